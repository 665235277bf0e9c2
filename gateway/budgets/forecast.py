"""Burn-down forecast: when a budget runs out at the rate of the last 24 hours.

The rate is what the budget's scope (project, key or user) spent in the 24
hours up to now, whatever its period; what is left is the limit less what is
used and reserved in the current window. A budget that spent nothing has no
forecast (``runs_out_at`` null); one whose forecast falls after its window
resets says so (``before_reset`` false), since the reset refills it first.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from core.timefmt import utc_iso

RATE_WINDOW = timedelta(hours=24)


def forecast(
    *, limit: float, used: float, reserved: float, spent_24h: float, now: datetime, resets_at: datetime | None
) -> dict[str, Any]:
    """``{rate_per_hour, remaining, runs_out_at, before_reset}`` for one unit (tokens or USD) of a budget."""
    rate = spent_24h / (RATE_WINDOW.total_seconds() / 3600)
    remaining = max(0.0, limit - used - reserved)
    runs_out: datetime | None = None
    if remaining <= 0:
        runs_out = now
    elif rate > 0:
        runs_out = now + timedelta(hours=remaining / rate)
    return {
        "rate_per_hour": round(rate, 10),
        "spent_last_24h": round(spent_24h, 10),
        "remaining": round(remaining, 10),
        "runs_out_at": utc_iso(runs_out),
        "before_reset": runs_out is not None and (resets_at is None or runs_out < resets_at),
    }
