"""Every metric the Grafana dashboards and the Prometheus rules query is one the code exposes.

The names come from a real :class:`~agents.platform.Platform`'s registry (built,
not started), so a renamed or dropped metric fails here instead of leaving an
empty panel. Recording rules (``aitp:…``) are defined in the rules file itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from agents.platform import Platform
from core.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
_METRIC = re.compile(r"(?<![:\w])((?:aitp|process)_[a-z0-9_]+)(?![:\w])")  # not inside a rule's a:b:c name
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
# The browser runner's pool metrics live in agents/browser, which lands on its own branch; once it is in
# the tree its registry must expose them like any other.
BROWSER_POOL = {"aitp_browser_pool_in_use", "aitp_browser_pool_queue", "aitp_browser_pool_browsers"}
BROWSER_IN_TREE = (DEPLOY.parent / "agents" / "browser").is_dir()


@pytest.fixture(scope="module")
async def exposed(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    platform = Platform(Settings(dev=True, data_dir=tmp_path_factory.mktemp("metrics")))
    try:
        names: set[str] = set()
        for family in platform.registry.collect():
            names |= {family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))}
        return names
    finally:
        platform.runtime.bus.stop()
        await platform.db.dispose()


def queried(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in _METRIC.findall(expr)}


def panel_exprs(dashboard: Path) -> dict[str, list[str]]:
    panels = json.loads(dashboard.read_text())["panels"]
    nested = [p for row in panels for p in row.get("panels", [])]
    return {p["title"]: [t["expr"] for t in p.get("targets", [])] for p in [*panels, *nested] if p.get("targets")}


def missing(names: set[str], exposed: set[str]) -> set[str]:
    unknown = names - exposed
    return unknown if BROWSER_IN_TREE else unknown - BROWSER_POOL


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_queries_exposed_metrics(dashboard: Path, exposed: set[str]) -> None:
    panels = panel_exprs(dashboard)
    assert panels, f"{dashboard.name} has no queries"
    problems = {title: missing(queried(exprs), exposed) for title, exprs in panels.items()}
    assert {title: names for title, names in problems.items() if names} == {}
    assert all(queried(exprs) for exprs in panels.values()), "a panel queries no aitp metric"


def test_the_console_views_have_panels() -> None:
    """Spend by model and savings, budgets used, latency by route, ledger, queue, workers, browser pool."""
    exprs = [e for dashboard in DASHBOARDS for es in panel_exprs(dashboard).values() for e in es]
    used = queried(exprs)
    assert {
        "aitp_spend_usd_total",
        "aitp_spend_all_plus_usd_total",
        "aitp_budget_used_ratio",
        "aitp_request_duration_seconds_bucket",
        "aitp_upstream_duration_seconds_sum",
        "aitp_requests_total",
        "aitp_ledger_seconds_bucket",
        "aitp_task_queue_depth",
        "aitp_task_worker_threads",
        "aitp_browser_pool_in_use",
        "aitp_browser_pool_queue",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    } <= used
    assert any("by (model" in e and "aitp_spend_usd_total" in e for e in exprs)
    assert any("histogram_quantile(0.99" in e and "aitp_request_duration_seconds" in e for e in exprs)


def test_prometheus_rules_query_exposed_metrics(exposed: set[str]) -> None:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    unknown = {rule.get("record") or rule.get("alert"): missing(queried([rule["expr"]]), exposed) for rule in rules}
    assert {name: names for name, names in unknown.items() if names} == {}
