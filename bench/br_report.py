"""Budget race bench: analysis of the outcomes and the printed report."""

from __future__ import annotations

import os
import re
import statistics
from collections import Counter
from dataclasses import dataclass

import harness
from br_config import (
    FAKE_COMPLETION_TOKENS,
    MAX_TOKENS_RANGE,
    PRICE_IN,
    PRICE_OUT,
    PROMPT_WORDS_RANGE,
    REPLICAS,
    SEED,
    TARGET_FALSE_REFUSALS,
    TARGET_LEDGER_MS,
    UPSTREAM_LATENCY_MS,
    USD_EPS,
    Hist,
    Ledger,
    Outcome,
    Replica,
    Setup,
    Spec,
)
from br_load import hist_count, hist_quantile
from harness import percentile, table

# -------------------------------------------------------------------- analysis


@dataclass
class FalseRefusals:
    refused: int
    fit_actual: int  # refused requests whose actual cost fits the unspent remainder (greedy, smallest first)
    fit_worst: int  # ... even at their full max_tokens
    room_tokens: float
    room_usd: float


def greedy_fit(specs: list[Spec], room_tokens: float, room_usd: float, limits: tuple[float, float], worst: bool) -> int:
    costs = [s.would_cost(s.max_tokens if worst else None) for s in specs]
    costs.sort(key=lambda c: max(c[0] / limits[0], c[1] / limits[1]))
    fitted = 0
    for tokens, usd in costs:
        if tokens <= room_tokens and usd <= room_usd + USD_EPS:
            room_tokens, room_usd, fitted = room_tokens - tokens, room_usd - usd, fitted + 1
    return fitted


def false_refusals(outcomes: list[Outcome], setup: Setup, ledger: Ledger) -> FalseRefusals:
    refused = [o.spec for o in outcomes if o.code == "budget_exceeded"]
    room_t = max(0.0, setup.limit_tokens - ledger.used_tokens)
    room_u = max(0.0, setup.limit_usd - ledger.used_usd)
    limits = (float(setup.limit_tokens), setup.limit_usd)
    return FalseRefusals(
        refused=len(refused),
        fit_actual=greedy_fit(refused, room_t, room_u, limits, worst=False),
        fit_worst=greedy_fit(refused, room_t, room_u, limits, worst=True),
        room_tokens=room_t,
        room_usd=room_u,
    )


def price_mismatches(outcomes: list[Outcome]) -> list[str]:
    """Served responses whose billed cost is not tokens x litellm's qwen-turbo price (or is missing)."""
    bad = []
    for o in outcomes:
        if not o.served:
            continue
        expected = o.prompt_tokens * PRICE_IN + o.completion_tokens * PRICE_OUT
        if o.cost_usd is None or abs(o.cost_usd - expected) > 1e-9:
            bad.append(f"#{o.spec.index} billed {o.cost_usd} for {o.prompt_tokens}+{o.completion_tokens} tokens")
    return bad


def usage_mismatches(outcomes: list[Outcome]) -> list[str]:
    """Served responses whose usage is not what the fake should have answered (prompt words, capped completion)."""
    bad = []
    for o in outcomes:
        if not o.served:
            continue
        cap = o.capped_max_tokens or o.spec.max_tokens
        want = (o.spec.prompt_words, min(cap, FAKE_COMPLETION_TOKENS))
        if (o.prompt_tokens, o.completion_tokens) != want:
            bad.append(f"#{o.spec.index} usage {o.prompt_tokens}+{o.completion_tokens}, expected {want[0]}+{want[1]}")
    return bad


# ---------------------------------------------------------------------- report


def fmt(value: float | None, digits: int = 2) -> str:
    return harness.fmt(value, digits)


def verdict(met: bool | None) -> str:
    return {True: "met", False: "NOT MET", None: "n/a"}[met]


def overspend_rows(r: Results, billed: tuple[int, float]) -> list[list[str]]:
    setup, ledger, db = r.setup, r.ledger, r.db
    rows = []
    for unit, limit, sources in (
        ("tokens", float(setup.limit_tokens), [ledger.used_tokens, float(billed[0]), float(db[1])]),
        ("USD", setup.limit_usd, [ledger.used_usd, billed[1], db[2]]),
    ):
        digits = 0 if unit == "tokens" else 8
        eps = 0.0 if unit == "tokens" else USD_EPS
        for name, used in zip(("ledger status", "clients billed", "usage_records"), sources, strict=True):
            over = max(0.0, used - limit)
            rows.append(
                [f"{unit}: {name}", fmt(limit, digits), fmt(used, digits), fmt(over, digits), verdict(over <= eps)]
            )
    return rows


def latency_rows(label: str, hist: Hist) -> list[list[str]]:
    rows = []
    for op in ("reserve", "settle"):
        buckets = hist.get(op, {})
        cells = [f"{label}: {op}", str(hist_count(buckets))]
        for q in (0.5, 0.99):
            value, beyond = hist_quantile(buckets, q)
            cells.append((">" if beyond else "") + fmt(None if value is None else value * 1000, 3))
        rows.append(cells)
    return rows


def ledger_sum(hist: Hist, q: float) -> float | None:
    parts = [hist_quantile(hist.get(op, {}), q)[0] for op in ("reserve", "settle")]
    return None if any(p is None for p in parts) else sum(p for p in parts if p is not None) * 1000


def log_lines(replicas: list[Replica]) -> tuple[list[str], int]:
    """Server log lines at warning or above, or with a traceback; and the count of expected budget alerts."""
    found, alerts = [], 0
    for i, replica in enumerate(replicas):
        for line in replica.log.read_text(errors="replace").splitlines():
            if not re.search(r'"level": ?"(warning|error|critical)"|Traceback', line, re.IGNORECASE):
                continue
            if '"logger":"aitp.budgets.alerts"' in line and "crossed" in line:
                alerts += 1
            else:
                found.append(f"[replica {i}] {line[:600]}")
    return found, alerts


@dataclass
class Results:
    setup: Setup
    outcomes: list[Outcome]
    wall_s: float
    ledger: Ledger
    db: tuple[int, int, float]
    burst_hist: Hist
    paced_hist: Hist
    paced_ms: dict[str, list[float]]
    redis_evalsha: tuple[int, float]  # (scripts run, server-side µs) during the burst, whole Redis server
    burst_cpu_pct: dict[str, float]  # per role (client, fake, replicas, postgres, other), in % of one core
    load_start: tuple[float, float, float]
    logs: tuple[list[str], int]

    @property
    def served(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.served]

    @property
    def billed(self) -> tuple[int, float]:
        return sum(o.tokens for o in self.served), sum(o.cost_usd or 0.0 for o in self.served)

    def e2e(self, q: float) -> float:
        return percentile(self.paced_ms["budget"], q) - percentile(self.paced_ms["no budget"], q)

    def paired_median(self) -> float:
        """Median of (budgeted - unbudgeted) over the interleaved pairs: robust to drift in the machine's load."""
        pairs = zip(self.paced_ms["budget"], self.paced_ms["no budget"], strict=True)
        return statistics.median(a - b for a, b in pairs)


def _row(figure: str, measured: str, target: str, met: bool | None) -> list[str]:
    return [figure, measured, target, verdict(met)]


def ledger_rows(r: Results) -> list[list[str]]:
    """Reserve + settle from the histograms, per phase and percentile, against the targets."""
    rows = []
    for phase, hist in (("burst", r.burst_hist), ("paced", r.paced_hist)):
        for q, target in zip((0.5, 0.99), TARGET_LEDGER_MS, strict=True):
            value = ledger_sum(hist, q)
            pct = f"p{q * 100:g}"
            rows.append(
                _row(
                    f"ledger {pct} ~ reserve {pct} + settle {pct} ({phase}, histograms)",
                    f"{fmt(value, 3)} ms",
                    f"<= {target:g} ms",
                    None if value is None else value <= target,
                )
            )
    return rows


def summary_rows(r: Results, fr: FalseRefusals) -> list[list[str]]:
    setup, ledger = r.setup, r.ledger
    billed, total = r.billed, len(r.outcomes)
    share = fr.fit_actual / total if total else 0.0
    over_t = (max(0.0, ledger.used_tokens - setup.limit_tokens), max(0.0, billed[0] - setup.limit_tokens))
    over_u = (max(0.0, ledger.used_usd - setup.limit_usd), max(0.0, billed[1] - setup.limit_usd))
    p50_ms, p99_ms = TARGET_LEDGER_MS
    errors = sum(o.error is not None for o in r.outcomes)
    return [
        _row("overspend tokens (ledger | clients)", f"{over_t[0]:.0f} | {over_t[1]:.0f}", "0", max(over_t) == 0),
        _row(
            "overspend USD (ledger | clients)",
            f"{over_u[0]:.8f} | {over_u[1]:.8f}",
            "0",
            max(over_u) <= USD_EPS,
        ),
        _row(
            "false refusals (share of all requests)",
            f"{share:.1%} ({fr.fit_actual}/{total})",
            f"<= {TARGET_FALSE_REFUSALS:.0%}",
            share <= TARGET_FALSE_REFUSALS,
        ),
        *ledger_rows(r),
        _row(
            "added p50, end to end (paced, budget - none)",
            f"{r.e2e(0.5):.2f} ms",
            f"<= {p50_ms:g} ms",
            r.e2e(0.5) <= p50_ms,
        ),
        _row(
            "added p99, end to end (paced, budget - none)",
            f"{r.e2e(0.99):.2f} ms",
            f"<= {p99_ms:g} ms",
            r.e2e(0.99) <= p99_ms,
        ),
        _row(
            "added, median of paired differences (paced)",
            f"{r.paired_median():.2f} ms",
            f"<= {p50_ms:g} ms",
            r.paired_median() <= p50_ms,
        ),
        _row("other errors (neither 200 nor 429)", str(errors), "0", errors == 0),
    ]


def print_header(r: Results) -> None:
    setup = r.setup
    print("\n================ budget race results ================")
    print(
        f"machine: nproc {os.cpu_count()}, load average at start {' '.join(f'{x:.2f}' for x in r.load_start)}, "
        f"at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {REPLICAS} aitp replicas on one PostgreSQL "
        f"database + Redis; fake upstream {UPSTREAM_LATENCY_MS:g} ms; client, fake and replicas share the machine"
    )
    print(
        f"budget: one block budget, period day, {setup.limit_tokens} tokens and ${setup.limit_usd:.7f}; "
        f"{len(r.outcomes)} requests at once, round-robin over the replicas, ~half streams (seed {SEED}), "
        f"max_tokens {MAX_TOKENS_RANGE[0]}..{MAX_TOKENS_RANGE[1]}, prompts {PROMPT_WORDS_RANGE[0]}+4.."
        f"{PROMPT_WORDS_RANGE[1]}+4 words; the fake answers min(max_tokens, {FAKE_COMPLETION_TOKENS}) tokens"
    )
    cpu = ", ".join(f"{role} {pct:.0f}%" for role, pct in r.burst_cpu_pct.items())
    print(
        f"CPU during the burst, in % of one core ({os.cpu_count()} cores = {100 * (os.cpu_count() or 1)}): {cpu} "
        "(client = this process; postgres = the replicas' backends; other = Redis and every other job)"
    )
    if r.ledger.reserved_tokens or r.ledger.reserved_usd > 1e-12:
        print(f"WARNING: reservations still open 15 s after the burst: {r.ledger}")


def print_overspend(r: Results) -> None:
    print("\noverspend = max(0, used - limit), from three independent sources")
    print(table(["source", "limit", "used", "overspend", "verdict"], overspend_rows(r, r.billed)))
    print(f"usage_records: {r.db[0]} ok rows for {len(r.served)} served requests")
    setup, ledger = r.setup, r.ledger
    left_t, left_u = setup.limit_tokens - ledger.used_tokens, setup.limit_usd - ledger.used_usd
    print(
        f"left unspent: {left_t:.0f} tokens ({left_t / setup.limit_tokens:.2%}) and ${left_u:.8f} "
        f"({left_u / setup.limit_usd:.2%}); a refusal names the first unit (tokens, then USD) that cannot take the "
        f"request's worst case; /status says current_action={ledger.current_action!r} after the burst"
    )


def print_false_refusals(fr: FalseRefusals, total: int) -> None:
    print("\nfalse refusals")
    print(
        "definition: after the burst, the unspent remainder of the budget (limit - used, per the ledger: "
        f"{fr.room_tokens:.0f} tokens and ${fr.room_usd:.8f}) is filled greedily with the refused requests' "
        f"would-be actual costs (prompt words + min(max_tokens, {FAKE_COMPLETION_TOKENS}) tokens, at "
        f"${PRICE_IN:g} / ${PRICE_OUT:g} per prompt / completion token), smallest first (by the larger of its two "
        "shares of the limits); those that fit in both units could have been afforded. Share = those / all requests."
    )
    print(
        f"refused (budget_exceeded): {fr.refused}; could have been afforded: {fr.fit_actual} "
        f"({fr.fit_actual / total if total else 0:.1%} of all, "
        f"{fr.fit_actual / fr.refused if fr.refused else 0:.1%} of the refused); "
        f"even with their full max_tokens as completion: {fr.fit_worst}"
    )


def print_latency(r: Results) -> None:
    print("\nledger latency from aitp_ledger_seconds, all replicas summed. Percentiles are interpolated linearly")
    print("inside the histogram buckets (like PromQL histogram_quantile); '>' = beyond the last bound. Reserve also")
    print("counts refused attempts. The histograms hold no per-request reserve+settle, so the summary adds the")
    print("separate percentiles: an estimate, not the percentile of the sum. Burst = the 429-heavy burst above")
    print("(event loops saturated); paced = the sequential batch below (idle loops).")
    rows = latency_rows("burst", r.burst_hist) + latency_rows("paced", r.paced_hist)
    print(table(["phase: op", "observations", "p50 ms", "p99 ms"], rows))
    calls, usec = r.redis_evalsha
    if calls:
        print(
            f"Redis itself during the burst: {calls} scripts (EVALSHA, every client of this Redis server), "
            f"{usec / calls:.1f} µs each on average inside Redis"
        )
    budget, free = r.paced_ms["budget"], r.paced_ms["no budget"]
    print(f"\nend to end, paced: {len(budget)} sequential non-stream requests per key (max_tokens 32), the two keys")
    print("interleaved, round-robin over the replicas; the budgeted key's project has one large block budget")
    rows = [
        [k, fmt(percentile(ms, 0.5)), fmt(percentile(ms, 0.99)), fmt(statistics.fmean(ms))]
        for k, ms in r.paced_ms.items()
    ]
    rows.append(
        ["difference", fmt(r.e2e(0.5)), fmt(r.e2e(0.99)), fmt(statistics.fmean(budget) - statistics.fmean(free))]
    )
    print(table(["key", "p50 ms", "p99 ms", "mean ms"], rows))
    print(f"median of the {len(budget)} paired differences (same replica, back to back): {r.paired_median():.2f} ms")


def print_counts(r: Results) -> None:
    refused = Counter(f"{o.code}/{o.unit}" if o.unit else str(o.code) for o in r.outcomes if o.status == 429)
    rows = []
    for mode, stream in (("non-stream", False), ("stream", True)):
        mine = [o for o in r.outcomes if o.spec.stream == stream]
        counts = (
            len(mine),
            sum(o.served for o in mine),
            sum(o.status == 429 for o in mine),
            sum(o.error is not None for o in mine),
            sum(o.served and o.capped_max_tokens is not None for o in mine),
        )
        rows.append([mode, *map(str, counts)])
    print("\ncounts")
    print(table(["mode", "sent", "served", "refused 429", "other errors", "served with max_tokens shrunk"], rows))
    print("refused by type: " + (", ".join(f"{k}: {v}" for k, v in sorted(refused.items())) or "none"))
    lat = [o.latency_s * 1000 for o in r.served]
    ref = [o.latency_s * 1000 for o in r.outcomes if o.status == 429]
    print(
        f"client latency in the burst: served p50 {fmt(percentile(lat, 0.5), 0)} / p99 {fmt(percentile(lat, 0.99), 0)}"
        f" ms, refused p50 {fmt(percentile(ref, 0.5), 0)} / p99 {fmt(percentile(ref, 0.99), 0)} ms; "
        f"wall time {r.wall_s:.2f} s for {len(r.outcomes)} requests"
    )
    for body, count in Counter(o.error for o in r.outcomes if o.error).most_common(20):
        print(f"  other error x{count}: {body}")


def print_sanity(r: Results) -> None:
    checks = price_mismatches(r.outcomes) + usage_mismatches(r.outcomes)
    print(f"\nsanity: {len(checks)} served responses with unexpected usage or billed cost")
    for line in checks[:10]:
        print("  " + line)
    lines, alerts = r.logs
    print(f"server logs: {alerts} budget threshold alerts (expected), {len(lines)} other lines at warning or above")
    for line in lines[:15]:
        print("  " + line)


def print_report(r: Results) -> None:
    fr = false_refusals(r.outcomes, r.setup, r.ledger)
    print_header(r)
    print("\nsummary")
    print(table(["figure", "measured", "target", "verdict"], summary_rows(r, fr)))
    print_overspend(r)
    print_false_refusals(fr, len(r.outcomes))
    print_latency(r)
    print_counts(r)
    print_sanity(r)
