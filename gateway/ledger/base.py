"""The ledger's contract: reserve the worst case, settle the truth, never overspend.

Before an upstream call the gateway reserves the worst-case amount in every
counter that applies (project, key and user budgets; RPM and TPM windows) in
one all-or-nothing step. After the call it settles the actual usage, which
releases whatever was reserved beyond it; on failure it releases everything.
A reservation nobody settles (a crashed replica) expires after its ``ttl_s``
and stops counting. Every backend implements :class:`Ledger` with the same
semantics and runs the same test suite.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

# Amounts are floats (USD costs are ~1e-7 per token); comparisons allow this much rounding.
TOLERANCE = 1e-9
# A reservation lives at most this long; ended windows are kept long enough for any of theirs to settle.
MAX_TTL_S = 3600.0


class Period(StrEnum):
    MINUTE = "minute"
    DAY = "day"
    MONTH = "month"
    TOTAL = "total"


@dataclass(frozen=True, slots=True)
class Charge:
    """One counter to reserve in: ``amount`` may not push ``used + reserved`` above ``limit``."""

    counter: str  # stable id chosen by the caller, e.g. "budget:7:usd", "rl:key:ab12:rpm"
    limit: float
    period: Period
    amount: float  # the worst case, >= 0

    def __post_init__(self) -> None:
        if not self.counter:
            raise ValueError("a charge needs a counter id")
        if not (math.isfinite(self.amount) and self.amount >= 0):
            raise ValueError(f"charge {self.counter!r}: amount must be a finite number >= 0, got {self.amount!r}")
        if not (math.isfinite(self.limit) and self.limit >= 0):
            raise ValueError(f"charge {self.counter!r}: limit must be a finite number >= 0, got {self.limit!r}")


@dataclass(frozen=True, slots=True)
class CounterState:
    """A counter in one window. ``limit`` is the one asked for, else the last one a reserve checked."""

    counter: str
    used: float
    reserved: float
    limit: float | None
    window_start: datetime | None  # aware UTC; None for TOTAL
    resets_at: datetime | None  # aware UTC; None for TOTAL

    @property
    def remaining(self) -> float | None:
        if self.limit is None:
            return None
        return max(0.0, self.limit - self.used - self.reserved)


@dataclass(frozen=True, slots=True)
class Reservation:
    """What one :meth:`Ledger.reserve` took; hand it back to settle or release."""

    id: str
    items: tuple[tuple[str, str, float], ...]  # (counter, window key, amount reserved)


class LedgerError(Exception):
    """Base of the ledger's own errors."""


class LedgerRefused(LedgerError):
    """A counter could not afford its charge; nothing was reserved anywhere."""

    def __init__(
        self, counter: str, *, limit: float, used: float, reserved: float, amount: float, resets_at: datetime | None
    ) -> None:
        self.counter = counter
        self.limit = limit
        self.used = used
        self.reserved = reserved
        self.amount = amount
        self.remaining = max(0.0, limit - used - reserved)
        self.resets_at = resets_at
        when = f"resets {resets_at:%Y-%m-%dT%H:%MZ}" if resets_at is not None else "never resets"
        super().__init__(
            f"counter {counter!r} cannot take {amount:g}: {self.remaining:g} of {limit:g} left"
            f" ({used:g} used, {reserved:g} reserved), {when}"
        )


class LedgerUnavailable(LedgerError):
    """The backend could not be reached in time; the caller decides whether to fail closed or open."""


def refuses(*, used: float, reserved: float, amount: float, limit: float) -> bool:
    """The one admission rule, mirrored by the Redis Lua scripts.

    A charge is refused when it would push ``used + reserved`` above the limit,
    and also when the counter is already full (within :data:`TOLERANCE`): a
    budget at 100% blocks even a zero-cost estimate, and a limit of 0 blocks
    everything.
    """
    held = used + reserved
    return held + amount > limit + TOLERANCE or held >= limit - TOLERANCE


def check_charges(charges: Sequence[Charge], ttl_s: float) -> None:
    """Reject malformed input before touching a backend."""
    if not (math.isfinite(ttl_s) and 0 < ttl_s <= MAX_TTL_S):
        raise ValueError(f"ttl_s must be between 0 and {MAX_TTL_S:g} seconds, got {ttl_s!r}")
    seen: set[str] = set()
    for charge in charges:
        if charge.counter in seen:
            raise ValueError(f"counter {charge.counter!r} appears twice in one reservation; merge the charges")
        seen.add(charge.counter)


class Ledger(Protocol):
    """Atomic budget and rate-limit counters shared by every replica.

    Windows are fixed and come from the clock: MINUTE is the current UTC
    minute, DAY and MONTH follow the ledger's timezone, TOTAL never resets.
    The window key is stored with the counter, so a new window starts at 0.
    """

    async def reserve(self, charges: Sequence[Charge], *, ttl_s: float = 900) -> Reservation:
        """Reserve every charge in its current window, or nothing.

        Raises :class:`LedgerRefused` for the first charge (in the given order)
        that :func:`refuses` turns down. A reservation neither settled nor
        released within ``ttl_s`` (at most :data:`MAX_TTL_S`) expires and stops
        counting; expiry is applied whenever a counter is touched, so no
        background job is needed.
        """
        ...

    async def settle(self, reservation: Reservation, actual: Mapping[str, float]) -> dict[str, CounterState]:
        """Record the actual usage per counter and free the reservation.

        ``used`` grows by ``actual.get(counter, 0)`` (which may exceed what was
        reserved: the truth is recorded) in the window the reservation was made
        in, even if that window has ended. Settling twice, or after the
        reservation expired, changes nothing. Returns each counter's state in
        that window afterwards.
        """
        ...

    async def release(self, reservation: Reservation) -> None:
        """Settle with zero usage."""
        ...

    async def snapshot(self, counters: Sequence[tuple[str, Period, float | None]]) -> dict[str, CounterState]:
        """Current-window state of each ``(counter, period, limit)``; unknown counters read as zero."""
        ...

    async def claim_once(self, key: str, ttl_s: float | None = None) -> bool:
        """True for exactly one caller across all replicas, forever or until ``ttl_s`` has passed."""
        ...

    async def close(self) -> None: ...
