"""The kinds registry: each task kind is a typed input model plus an async function.

A kind is the extension point of the task engine. Register one with
:meth:`KindRegistry.register`; ``POST /api/tasks`` validates the input against
its model (a 400 naming the field, and no task, when it does not fit), then
calls the kind's ``check_submit`` (a 400 for what only the platform can tell:
a missing document, a case not accepted), and a worker calls
``run(ctx, input)``. The value it returns (JSON-able) becomes the task's
result. Raise :class:`TransientError` for failures worth retrying (upstream
5xx, timeouts), :class:`TaskError` for a failure the user should read; any
other exception fails the task at once.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from core.errors import InvalidRequest
from core.identity.principal import Principal
from core.validation import invalid_from

if TYPE_CHECKING:
    from .context import TaskContext

_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class TransientError(Exception):
    """A failure that may pass: the task is retried with exponential back-off, up to its attempts."""


class TaskError(Exception):
    """A failure of the task's own making; it fails at once with this type, message and hint."""

    def __init__(self, message: str, *, type: str = "task_error", hint: str | None = None) -> None:
        super().__init__(message)
        self.type = type
        self.message = message
        self.hint = hint


Runner = Callable[["TaskContext", Any], Awaitable[Any]]
# Checks a review decision against the task waiting for it (its input and interrupt_data) before it is
# recorded; raises InvalidRequest (400) naming what to fix, so a bad correction never resumes the task.
ReviewCheck = Callable[[dict[str, Any], dict[str, Any], Any], None]
# Checks a valid input against the platform before the task is stored (the document exists in the caller's
# project, the case is accepted, a model is configured); raises InvalidRequest (400) so that nothing is queued
# that can only fail later.
SubmitCheck = Callable[[Principal, Any], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    input_model: type[BaseModel]
    run: Runner
    description: str = ""
    queue: str | None = None  # None: tasks.queue
    time_limit_s: float | None = None  # None: tasks.time_limits[name], else tasks.time_limit_s
    check_review: ReviewCheck | None = None  # (decision, input, interrupt_data)
    check_submit: SubmitCheck | None = None  # (principal, input model)


class KindRegistry:
    def __init__(self, kinds: list[Kind] | None = None) -> None:
        self._kinds: dict[str, Kind] = {}
        for kind in kinds or []:
            self.register(kind)

    def register(self, kind: Kind) -> None:
        if not _NAME.match(kind.name):
            raise ValueError(f"kind name '{kind.name}' must be dotted lower-case words, e.g. 'testcase.generate'")
        if kind.name in self._kinds:
            raise ValueError(f"kind '{kind.name}' is registered twice")
        self._kinds[kind.name] = kind

    def __iter__(self) -> Iterator[Kind]:
        return iter(self._kinds.values())

    def get(self, name: str) -> Kind:
        kind = self._kinds.get(name)
        if kind is None:
            known = ", ".join(sorted(self._kinds)) or "none"
            raise InvalidRequest(f"unknown task kind '{name}'; known kinds: {known}", param="kind")
        return kind

    def validate(self, name: str, data: Any) -> BaseModel:
        """The input as its kind's model; a 400 naming ``input.<field>`` when it does not fit."""
        kind = self.get(name)
        if not isinstance(data, dict):
            raise InvalidRequest("'input' must be a JSON object", param="input")
        try:
            return kind.input_model.model_validate(data)
        except ValidationError as exc:
            raise invalid_from(exc, kind.input_model, "input", f"input for kind '{name}'") from None

    def parse(self, name: str, data: dict[str, Any]) -> Any:
        return self.get(name).input_model.model_validate(data)
