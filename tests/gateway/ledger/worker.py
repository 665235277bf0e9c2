"""One of several OS processes hammering the same counters (run by test_concurrency).

Reads a JSON spec from argv, prints ``ready``, waits for a line on stdin so all
workers start together, then reserves, settles or releases, claims a key, and
prints a JSON summary of what it was granted.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from typing import Any

from core.clock import SystemClock
from gateway.ledger import Charge, Ledger, LedgerRefused, Period

from .backends import open_ledger


async def _one(ledger: Ledger, spec: dict[str, Any], rng: random.Random) -> float:
    amount = float(rng.choice((1, 2, 3)))
    charges = [
        Charge(spec["daily"], spec["daily_limit"], Period.DAY, amount),
        Charge(spec["total"], spec["total_limit"], Period.TOTAL, amount),
    ]
    try:
        reservation = await ledger.reserve(charges)
    except LedgerRefused:
        return 0.0
    await asyncio.sleep(rng.random() / 1000)  # the "upstream call"
    if rng.random() < 0.3:
        await ledger.release(reservation)
        return 0.0
    await ledger.settle(reservation, {spec["daily"]: amount, spec["total"]: amount})
    return amount


async def _run(spec: dict[str, Any]) -> dict[str, Any]:
    opened = open_ledger(spec["kind"], spec["url"], spec["prefix"], SystemClock())
    rng = random.Random(spec["seed"])
    try:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await asyncio.to_thread(sys.stdin.readline)
        used = 0.0
        for _ in range(spec["rounds"]):
            used += sum(await asyncio.gather(*(_one(opened.ledger, spec, rng) for _ in range(spec["parallel"]))))
        claims = await asyncio.gather(*(opened.ledger.claim_once(spec["claim"]) for _ in range(5)))
        return {"used": used, "claimed": sum(claims)}
    finally:
        await opened.close()


if __name__ == "__main__":
    summary = asyncio.run(_run(json.loads(sys.argv[1])))
    sys.stdout.write(json.dumps(summary) + "\n")
