"""Task engine: durable tasks on Dramatiq with exactly-once effects and live progress.

Importing this package has no side effects: the broker, actors and worker
threads exist only once a :class:`~agents.tasks.runtime.TaskRuntime` is built and
started. A workflow registers a kind (:mod:`agents.tasks.kinds`) and, for
several expensive steps, checkpoints them (:mod:`agents.tasks.workflow`).
"""
