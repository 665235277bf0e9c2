"""The services the MCP tools call: the very object the REST handlers use (one rule set for both)."""

from __future__ import annotations

from agents.platform import Services as Platform

__all__ = ["Platform"]
