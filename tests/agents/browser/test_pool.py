"""The pool's rules under load: the cap on browser processes, a bounded queue, the circuit breaker, recycling."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agents.browser.metrics import BrowserMetrics
from agents.browser.pool import BrowserUnavailable, ChromiumPool, PoolSaturated
from agents.browser.runner import BrowserRunner
from agents.browser.spec import parse_spec
from core.outbound import OutboundPolicy
from core.settings import BrowserSettings, OutboundSettings
from tests.agents.browser.conftest import Rig
from tests.agents.browser.site import Site


def pool_of(**settings: object) -> tuple[ChromiumPool, BrowserMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = BrowserMetrics(registry)
    return ChromiumPool(BrowserSettings.model_validate(settings), metrics), metrics, registry


async def test_twenty_concurrent_runs_never_exceed_three_browsers(rig: Rig, site: Site, tmp_path: Path) -> None:
    pool, metrics, registry = pool_of(max_browsers=3, recycle_after_runs=4, trace=False, queue_wait_s=120)
    policy = OutboundPolicy(OutboundSettings(allow_loopback=True))
    runner = BrowserRunner(pool.settings, pool, policy, rig.store, metrics)
    spec = parse_spec(
        {
            "base_url": site.url,
            "steps": [
                {"action": "goto", "url": "/buttons"},
                {"action": "click", "target": {"testid": "save"}},
                {"action": "expect_text", "target": {"testid": "status"}, "value": "Save"},
            ],
        }
    )
    peak = 0
    seen: list[list[str]] = []
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal peak
        while not done.is_set():
            # Count the main Chromium processes under this test process (renderers are their children).
            pids = await asyncio.to_thread(pool.browser_pids)
            if len(pids) > 3:
                seen.append(pids)
            peak = max(peak, len(pids))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    try:
        results = await asyncio.gather(
            *(runner.run("p", spec, f"load-{i}", tmp_path / f"r{i}", rig.healer()) for i in range(20))
        )
    finally:
        done.set()
        await watcher
        stats = pool.stats()
        await pool.close()
    assert [r["status"] for r in results] == ["passed"] * 20
    assert 1 <= peak <= 3 and stats.peak_browsers <= 3, seen
    assert stats.recycled >= 2  # 20 runs over browsers recycled after 4 runs each
    assert stats.launched >= 5
    assert registry.get_sample_value("aitp_browser_pool_in_use") == 0
    assert registry.get_sample_value("aitp_browser_pool_queue") == 0


async def test_a_full_queue_fails_fast_with_a_retry_after() -> None:
    pool, _, registry = pool_of(max_browsers=1, queue_size=0, queue_wait_s=5)
    try:
        async with pool.lease({}):
            started = time.perf_counter()
            with pytest.raises(PoolSaturated) as caught:
                async with pool.lease({}):
                    pass
            assert time.perf_counter() - started < 1
        error = caught.value
        assert error.code == "browser_pool_saturated" and error.status == 503
        assert int(error.headers["Retry-After"]) >= 1 and "browser.max_browsers" in error.message
        assert registry.get_sample_value("aitp_browser_pool_refusals_total", {"reason": "queue_full"}) == 1
    finally:
        await pool.close()


async def test_a_wait_past_the_timeout_is_refused() -> None:
    pool, _, _ = pool_of(max_browsers=1, queue_size=5, queue_wait_s=0.5)
    try:
        async with pool.lease({}):
            with pytest.raises(PoolSaturated, match="came free"):
                async with pool.lease({}):
                    pass
        async with pool.lease({}) as context:  # free again: served at once
            assert await context.new_page()
    finally:
        await pool.close()


async def test_launches_that_keep_failing_open_the_breaker(tmp_path: Path) -> None:
    pool, _, registry = pool_of(
        executable_path=tmp_path / "no-chromium", launch_failures_to_open=2, breaker_open_s=30, launch_timeout_s=5
    )
    try:
        for _ in range(2):
            with pytest.raises(BrowserUnavailable, match="executable_path"):
                async with pool.lease({}):
                    pass
        started = time.perf_counter()
        with pytest.raises(BrowserUnavailable) as caught:
            async with pool.lease({}):
                pass
        assert time.perf_counter() - started < 0.5
        assert caught.value.code == "browser_unavailable" and int(caught.value.headers["Retry-After"]) >= 25
        assert pool.stats().breaker_open
        assert registry.get_sample_value("aitp_browser_pool_refusals_total", {"reason": "breaker"}) == 1
    finally:
        await pool.close()
