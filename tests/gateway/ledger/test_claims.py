"""claim_once: one winner per key, forever or until its ttl has passed (alerts fire once per crossing)."""

from __future__ import annotations

from collections.abc import Callable

from gateway.ledger import Ledger
from tests.fakes.clock import FakeClock

Name = Callable[[str], str]


async def test_claim_is_won_once(ledger: Ledger, name: Name, clock: FakeClock) -> None:
    key, other = name("alert:project:7:day:80"), name("alert:project:7:day:100")
    assert await ledger.claim_once(key) is True
    assert await ledger.claim_once(key) is False
    assert await ledger.claim_once(other) is True
    clock.advance(10 * 365 * 86400)
    assert await ledger.claim_once(key) is False


async def test_claim_with_ttl_can_be_won_again_after_it(ledger: Ledger, name: Name, clock: FakeClock) -> None:
    key = name("alert:key:ab12:rpm")
    assert await ledger.claim_once(key, ttl_s=10) is True
    clock.advance(9.9)
    assert await ledger.claim_once(key, ttl_s=10) is False
    clock.advance(0.2)
    assert await ledger.claim_once(key, ttl_s=10) is True
    assert await ledger.claim_once(key, ttl_s=10) is False
