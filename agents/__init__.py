"""Task engine: durable tasks on Dramatiq with exactly-once effects and live progress.

Importing this package has no side effects: the broker, actors and worker
threads exist only once a :class:`TaskRuntime` is built and started.
"""

from agents.context import Cancelled, Paused, TaskContext
from agents.events import TaskEvent
from agents.kinds import Kind, KindRegistry, TaskError, TransientError
from agents.routes import task_routes
from agents.runtime import TaskRuntime, default_kinds
from agents.worker import run_worker, supervise

__all__ = [
    "Cancelled",
    "Kind",
    "KindRegistry",
    "Paused",
    "TaskContext",
    "TaskError",
    "TaskEvent",
    "TaskRuntime",
    "TransientError",
    "default_kinds",
    "run_worker",
    "supervise",
    "task_routes",
]
