"""Never over the limit: hundreds of concurrent tasks, and several OS processes, on the same counters."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from core.clock import SystemClock
from gateway.ledger import TOLERANCE, Charge, Ledger, LedgerRefused, Period, Reservation

from .conftest import Backend

Name = Callable[[str], str]
REPO = Path(__file__).resolve().parents[3]


async def _try(ledger: Ledger, charges: list[Charge]) -> Reservation | None:
    try:
        return await ledger.reserve(charges)
    except LedgerRefused:
        return None


async def test_exactly_the_allowed_number_is_granted(ledger: Ledger, name: Name) -> None:
    rpm, roomy = name("rpm"), name("roomy")
    charges = [Charge(rpm, 137, Period.MINUTE, 1), Charge(roomy, 10_000, Period.DAY, 1)]
    results = await asyncio.gather(*(_try(ledger, charges) for _ in range(300)))
    assert sum(r is not None for r in results) == 137
    snaps = await ledger.snapshot([(rpm, Period.MINUTE, 137), (roomy, Period.DAY, 10_000)])
    assert snaps[rpm].reserved == 137 and snaps[roomy].reserved == 137


async def test_random_amounts_never_exceed_and_refusals_are_real(ledger: Ledger, name: Name) -> None:
    usd = name("usd")
    limit = 25.0
    rng = random.Random(7)
    amounts = [rng.uniform(0.01, 1.0) for _ in range(300)]
    results = await asyncio.gather(*(_try(ledger, [Charge(usd, limit, Period.DAY, a)]) for a in amounts))
    granted = sum(a for a, r in zip(amounts, results, strict=True) if r is not None)
    assert granted <= limit + TOLERANCE
    snap = (await ledger.snapshot([(usd, Period.DAY, limit)]))[usd]
    assert abs(snap.reserved - granted) < 1e-9
    # Nothing was released, so the total only grew: every refusal still cannot fit at the end.
    for amount, result in zip(amounts, results, strict=True):
        if result is None:
            assert granted + amount > limit - TOLERANCE


async def test_concurrent_reserve_settle_release_keeps_exact_books(ledger: Ledger, name: Name) -> None:
    usd, rpm = name("usd"), name("rpm")
    rng = random.Random(11)

    async def call(amount: float, release: bool) -> float:
        reservation = await _try(ledger, [Charge(usd, 50, Period.MONTH, amount), Charge(rpm, 1000, Period.MINUTE, 1)])
        if reservation is None:
            return 0.0
        await asyncio.sleep(0)
        if release:
            await ledger.release(reservation)
            return 0.0
        await ledger.settle(reservation, {usd: amount / 2, rpm: 1})
        return amount / 2

    plan = [(rng.uniform(0.1, 2.0), rng.random() < 0.25) for _ in range(300)]
    used = sum(await asyncio.gather(*(call(amount, release) for amount, release in plan)))
    snaps = await ledger.snapshot([(usd, Period.MONTH, 50), (rpm, Period.MINUTE, 1000)])
    assert abs(snaps[usd].used - used) < 1e-9 and snaps[usd].reserved == 0
    assert snaps[usd].used <= 50 + TOLERANCE and snaps[rpm].reserved == 0


async def test_concurrent_claims_one_winner(ledger: Ledger, name: Name) -> None:
    key = name("alert:80")
    results = await asyncio.gather(*(ledger.claim_once(key) for _ in range(100)))
    assert sum(results) == 1


async def test_processes_never_overspend(backend: Backend, name: Name) -> None:
    daily, total, claim = name("daily"), name("total"), name("claim")
    base = {
        "kind": backend.kind,
        "url": backend.url,
        "prefix": backend.prefix,
        "daily": daily,
        "daily_limit": 250.0,
        "total": total,
        "total_limit": 200.0,
        "claim": claim,
        "rounds": 12,
        "parallel": 8,
    }
    specs = [{**base, "seed": secrets.randbits(32)} for _ in range(4)]
    summaries = await asyncio.to_thread(_run_together, specs)

    used = sum(s["used"] for s in summaries)
    assert sum(s["claimed"] for s in summaries) == 1
    ledger = backend.make(SystemClock())  # the worker processes counted on the real clock
    snaps = await ledger.snapshot([(daily, Period.DAY, 250.0), (total, Period.TOTAL, 200.0)])
    assert snaps[total].used == used == snaps[daily].used
    assert snaps[total].reserved == 0 and snaps[daily].reserved == 0
    # 4 x 96 calls of 1-3 (most settled) ask for far more than 200: the tighter counter fills up, and no further.
    assert 190 <= used <= 200


def _run_together(specs: list[dict[str, object]]) -> list[dict[str, float]]:
    """Start one worker process per spec, let them all go at once, and collect their summaries."""
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.gateway.ledger.worker", json.dumps(spec)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for spec in specs
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        summaries = []
        for worker in workers:
            out, _ = worker.communicate(timeout=60)
            assert worker.returncode == 0, out
            summaries.append(json.loads(out.strip().splitlines()[-1]))
        return summaries
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
