"""Rebuilding counters the Redis ledger lost: the durable record is the truth, Redis only counts.

Redis can come back without a window's counters: a restart without
persistence, a failover to a replica that had not caught up, an evicted key.
Starting those counters at zero would hand every budget out a second time, so
each counter window carries a marker (the ``built`` field of its hash, set
when it was built). A Redis operation on a tracked counter whose marker is
missing answers "needs rebuild" instead of admitting anything; the ledger then
asks its :class:`DurableRecord` what that counter used in that window, writes
the amount only where the marker is still missing (so replicas that rebuild at
once cannot add twice), and retries.

What a rebuild cannot know, and so does not count:

- Usage not yet in the record when it is read. Usage rows are written in
  batches a moment after each call (``usage.flush_interval_s``), and calls in
  flight when Redis went away are recorded only when they end. The counter
  falls short by at most those calls: the ones in flight at the restart plus
  the ones finished in the last flush interval or so.
- Reservations. They lived only in Redis, so the calls in flight at the
  restart no longer hold their worst case, and new calls may be admitted into
  that room until they finish. Their settlement finds no reservation and
  changes nothing (as after an expiry): their usage is in the record but not
  in the counter until the counter is next rebuilt.

Both are bounded by the calls in flight (and just finished) at the moment
Redis was lost; Redis persistence (AOF, ``appendfsync everysec``) keeps even
that small.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from gateway.ledger.windows import Window


class DurableRecord(Protocol):
    """Where a ledger that can lose its counters reads them back."""

    def tracks(self, counter: str) -> bool:
        """Whether the durable record knows ``counter``; the others (rate-limit windows) restart at zero."""
        ...

    async def durable_usage(self, wanted: Sequence[tuple[str, Window]]) -> Mapping[tuple[str, str], float]:
        """What each ``(counter, window)`` has used per the durable record, keyed by ``(counter, window.key)``.

        A pair left out counts as zero. Raise
        :class:`~gateway.ledger.base.LedgerUnavailable` when the record cannot
        be read in time: the ledger then fails closed rather than guess.
        """
        ...
