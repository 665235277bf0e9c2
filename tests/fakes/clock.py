"""The clock the tests move by hand (a :class:`core.clock.Clock`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass
class FakeClock:
    """Stands still until a test moves it: ``advance(seconds)`` or set ``current``."""

    current: datetime

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
