"""The wall clock: every timestamp the product stores, shows or compares comes from a :class:`Clock`.

The wiring modules (``aitp/app.py``, ``agents/tasks/worker.py``) build one
:class:`SystemClock` per process and pass it down to every store and service
that reads the time; tests pass a fake they move by hand
(``tests/fakes/clock.py``). Durations are measured with monotonic timers
(``time.perf_counter``, ``loop.time()``), which are not wall-clock reads and
need no clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time as an aware UTC datetime."""
        ...


class SystemClock:
    """The real clock: this module holds the product's only direct read of the time."""

    def now(self) -> datetime:
        return datetime.now(UTC)
