"""Gateway overhead bench: the printed tables, the target checks and the JSON results."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gw_config import (
    AITP,
    DIRECT,
    MIN_WALL_FOR_CPU_S,
    NOISY_OTHER_CPU_PCT,
    NON_STREAM,
    PROXY,
    REFERENCE,
    STREAM,
    TARGET_ADDED_C1_MS,
    TARGET_RPS_RATIO,
    TARGET_RSS_MB,
    LegResult,
    Sizes,
)
from gw_servers import proxy_version
from harness import fmt, table

# ----------------------------------------------------------------------- report


def _fmt(value: float | None, digits: int = 1) -> str:
    return fmt(value, digits)


def _find(results: list[LegResult], target: str, latency: float) -> LegResult | None:
    for r in results:
        if r.target == target and r.latency_ms == latency:
            return r
    return None


def added(results: list[LegResult], target: str, latency: float, mode: str, conc: int) -> tuple[float, float] | None:
    """(p50, p99) of the gateway minus the same percentile of the direct leg."""
    gw, direct = _find(results, target, latency), _find(results, DIRECT, latency)
    gp = gw.phase(mode, conc) if gw else None
    dp = direct.phase(mode, conc) if direct else None
    if gp is None or dp is None or not gp.ok or not dp.ok:
        return None
    return round(gp.p50_ms - dp.p50_ms, 2), round(gp.p99_ms - dp.p99_ms, 2)


def rps(results: list[LegResult], target: str, latency: float, mode: str, conc: int) -> float | None:
    leg = _find(results, target, latency)
    phase = leg.phase(mode, conc) if leg else None
    return phase.rps if phase and phase.ok else None


PHASE_HEADERS = ["target", "rps", "p50 ms", "p99 ms", "added p50", "added p99", "errors", "cpu% cli/srv/other"]


def _phase_row(results: list[LegResult], name: str, latency: float, mode: str, conc: int) -> list[str]:
    leg = _find(results, name, latency)
    p = leg.phase(mode, conc) if leg else None
    if p is None:
        return [name, *["-"] * (len(PHASE_HEADERS) - 1)]
    add = added(results, name, latency, mode, conc) if name != DIRECT else None
    return [
        name,
        _fmt(p.rps),
        _fmt(p.p50_ms, 2),
        _fmt(p.p99_ms, 2),
        _fmt(add[0], 2) if add else "-",
        _fmt(add[1], 2) if add else "-",
        f"{p.errors}/{p.requests}",
        p.cpu_summary(),
    ]


def phase_tables(results: list[LegResult], latencies: list[float], targets: list[str], sizes: Sizes) -> str:
    out: list[str] = []
    for latency in latencies:
        for conc in (1, sizes.concurrency):
            for mode in (NON_STREAM, STREAM):
                rows = [_phase_row(results, name, latency, mode, conc) for name in targets]
                count = sizes.count(mode, conc)
                out.append(f"\nupstream {latency:g} ms | concurrency {conc} | {mode} | {count} requests")
                out.append(table(PHASE_HEADERS, rows))
    return "\n".join(out)


def noise_note(results: list[LegResult]) -> str | None:
    """A warning when other work on the machine took CPU during the measured phases."""
    worst = max((p.other_cpu_pct for r in results for p in r.phases if p.wall_s >= MIN_WALL_FOR_CPU_S), default=0.0)
    if worst < NOISY_OTHER_CPU_PCT:
        return None
    return (
        f"WARNING: other processes used up to {worst:.0f}% of a core during a measured phase; "
        "figures may be noisy (see cpu% other)."
    )


def resourcetable(results: list[LegResult], latencies: list[float], targets: list[str]) -> str:
    headers = ["target"]
    for latency in latencies:
        headers += [f"RSS MB @{latency:g}ms", f"first answer s @{latency:g}ms"]
    rows = []
    for name in targets:
        row = [name]
        for latency in latencies:
            leg = _find(results, name, latency)
            row += [_fmt(leg.rss_mb if leg else None, 0), _fmt(leg.startup_s if leg else None, 2)]
        rows.append(row)
    return table(headers, rows)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def ratiotable(results: list[LegResult], latencies: list[float], conc: int) -> str:
    headers = ["metric", *[f"@{lat:g}ms" for lat in latencies]]
    rows: list[list[str]] = []
    for mode in (NON_STREAM, STREAM):
        rows.append(
            [
                f"rps c={conc} {mode} (aitp / proxy)",
                *[
                    _fmt(_ratio(rps(results, AITP, lat, mode, conc), rps(results, PROXY, lat, mode, conc)), 2)
                    for lat in latencies
                ],
            ]
        )
        for c in (1, conc):
            for idx, q in ((0, "p50"), (1, "p99")):
                cells = []
                for lat in latencies:
                    a, p = added(results, AITP, lat, mode, c), added(results, PROXY, lat, mode, c)
                    cells.append(_fmt(_ratio(a[idx] if a else None, p[idx] if p else None), 2))
                rows.append([f"added {q} c={c} {mode} (aitp / proxy)", *cells])
    rss_cells, start_cells = [], []
    for lat in latencies:
        mine, theirs = _find(results, AITP, lat), _find(results, PROXY, lat)
        rss_cells.append(_fmt(_ratio(mine.rss_mb if mine else None, theirs.rss_mb if theirs else None), 2))
        start_cells.append(_fmt(_ratio(mine.startup_s if mine else None, theirs.startup_s if theirs else None), 2))
    rows.append(["RSS (aitp / proxy)", *rss_cells])
    rows.append(["first answer time (aitp / proxy)", *start_cells])
    return table(headers, rows)


@dataclass
class Check:
    line: str
    measured: str
    target: str
    met: bool | None  # None: could not be measured

    @property
    def verdict(self) -> str:
        return {True: "met", False: "NOT MET", None: "n/a"}[self.met]


def _check_max(line: str, value: float | None, limit: float, unit: str) -> Check:
    met = None if value is None else value <= limit
    return Check(line, "-" if value is None else f"{value:.2f} {unit}", f"<= {limit:g} {unit}", met)


def target_checks(results: list[LegResult], latencies: list[float], conc: int) -> list[Check]:
    checks: list[Check] = []
    for lat in latencies:
        for mode in (NON_STREAM, STREAM):
            a = added(results, AITP, lat, mode, 1)
            p50_limit, p99_limit = TARGET_ADDED_C1_MS[mode]
            checks.append(_check_max(f"added p50 c=1 {mode} @{lat:g}ms", a[0] if a else None, p50_limit, "ms"))
            checks.append(_check_max(f"added p99 c=1 {mode} @{lat:g}ms", a[1] if a else None, p99_limit, "ms"))
    for lat in latencies:
        for mode in (NON_STREAM, STREAM):
            ratio = _ratio(rps(results, AITP, lat, mode, conc), rps(results, PROXY, lat, mode, conc))
            met = None if ratio is None else ratio >= TARGET_RPS_RATIO
            measured = "-" if ratio is None else f"{ratio:.2f}x ({_fmt(rps(results, AITP, lat, mode, conc))} rps)"
            checks.append(Check(f"rps c={conc} {mode} @{lat:g}ms vs proxy", measured, f">= {TARGET_RPS_RATIO}x", met))
    for lat in latencies:
        leg = _find(results, AITP, lat)
        checks.append(_check_max(f"RSS after load @{lat:g}ms", leg.rss_mb if leg else None, TARGET_RSS_MB, "MB"))
    for lat in latencies:
        mine, theirs = _find(results, AITP, lat), _find(results, PROXY, lat)
        a_s, p_s = (mine.startup_s if mine else None), (theirs.startup_s if theirs else None)
        met = None if a_s is None or p_s is None else a_s < p_s
        measured = "-" if a_s is None else f"{a_s:.2f} s (proxy {_fmt(p_s, 2)} s)"
        checks.append(Check(f"first answer @{lat:g}ms sooner than proxy", measured, "< proxy", met))
    return checks


def referencetable(results: list[LegResult], latencies: list[float], conc: int) -> str:
    """The reference LiteLLM proxy figures next to this run's."""
    headers = ["proxy figure", "reference", *[f"this run @{lat:g}ms" for lat in latencies]]
    rows: list[list[str]] = []
    for mode in (NON_STREAM, STREAM):
        ref50, ref99 = REFERENCE.proxy_added_c1_ms[mode]
        cells50, cells99 = [], []
        for lat in latencies:
            a = added(results, PROXY, lat, mode, 1)
            cells50.append(_fmt(a[0] if a else None, 2))
            cells99.append(_fmt(a[1] if a else None, 2))
        rows.append([f"added p50 c=1 {mode} ms", _fmt(ref50, 1), *cells50])
        rows.append([f"added p99 c=1 {mode} ms", _fmt(ref99, 1), *cells99])
        rows.append(
            [
                f"rps c={conc} {mode}",
                _fmt(REFERENCE.proxy_rps_c50[mode], 0),
                *[_fmt(rps(results, PROXY, lat, mode, conc)) for lat in latencies],
            ]
        )
        rows.append(
            [
                f"direct rps c={conc} {mode}",
                _fmt(REFERENCE.direct_rps_c50[mode], 0),
                *[_fmt(rps(results, DIRECT, lat, mode, conc)) for lat in latencies],
            ]
        )
    legs = [_find(results, PROXY, lat) for lat in latencies]
    rows.append(["RSS MB", _fmt(REFERENCE.proxy_rss_mb, 0), *[_fmt(x.rss_mb if x else None, 0) for x in legs]])
    rows.append(
        ["first answer s", f"~{REFERENCE.proxy_startup_s:g}", *[_fmt(x.startup_s if x else None, 2) for x in legs]]
    )
    return table(headers, rows)


def print_report(results: list[LegResult], latencies: list[float], targets: list[str], sizes: Sizes) -> list[Check]:
    print("\n================ results ================")
    print("cpu%: load generator / fake upstream + gateway / everything else, in % of one core (2 cores = 200)")
    print(phase_tables(results, latencies, targets, sizes))
    note = noise_note(results)
    if note:
        print("\n" + note)
    print("\nresources (server process and its children; direct has no server of its own)")
    print(resourcetable(results, latencies, targets))
    if AITP in targets and PROXY in targets:
        print("\nratios aitp vs litellm-proxy (rps: higher is better; the rest: lower is better)")
        print(ratiotable(results, latencies, sizes.concurrency))
    if PROXY in targets:
        print("\nlitellm-proxy: reference figures vs this run")
        print(referencetable(results, latencies, sizes.concurrency))
    checks = target_checks(results, latencies, sizes.concurrency)
    print("\ntargets for aitp")
    print(
        table(
            ["target line", "measured", "target", "verdict"],
            [[c.line, c.measured, c.target, c.verdict] for c in checks],
        )
    )
    failed = [r for r in results if r.error]
    for r in failed:
        print(f"\n{r.target} @{r.latency_ms:g}ms failed: {r.error}")
    return checks


def _json_safe(value: Any) -> Any:
    """NaN is not JSON: turn it into null, recursively."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: Path, results: list[LegResult], checks: list[Check], sizes: Sizes, elapsed_s: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_s": round(elapsed_s, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "litellm_proxy_version": proxy_version(),
        "sizes": asdict(sizes),
        "reference": asdict(REFERENCE),
        "results": [asdict(r) for r in results],
        "targets": [{**asdict(c), "verdict": c.verdict} for c in checks],
    }
    path.write_text(json.dumps(_json_safe(doc), indent=2, allow_nan=False) + "\n")
