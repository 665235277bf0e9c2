"""Agents: the task engine (``agents.tasks``) and the workflows that run on it.

Each workflow or capability is a sibling package (``kb``, ``testcases``, ``automation``).
Importing this package loads nothing: importing ``agents.testcases.points`` does not start
Dramatiq or Redis.
"""
