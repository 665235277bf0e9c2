"""Budget race bench: REST setup, the requests of the burst and paced batch, the ledger's state."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import time
from typing import Any

import httpx
from br_config import (
    MAX_TOKENS_RANGE,
    PRICE_IN,
    PRICE_OUT,
    PROMPT_MARGIN,
    PROMPT_WORDS_RANGE,
    REPLICAS,
    REQUEST_TIMEOUT_S,
    VOCABULARY,
    Hist,
    Ledger,
    Outcome,
    Replica,
    Setup,
    Spec,
)
from prometheus_client.parser import text_string_to_metric_families

# ------------------------------------------------------------------- REST setup


async def api(http: httpx.AsyncClient, base: str, key: str, method: str, path: str, body: Any = None) -> Any:
    response = await http.request(method, f"{base}{path}", json=body, headers={"authorization": f"Bearer {key}"})
    if response.status_code >= 300:
        raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text}")
    return response.json()


async def new_project_key(http: httpx.AsyncClient, base: str, admin: str, project: str) -> str:
    await api(http, base, admin, "POST", "/api/projects", {"name": project})
    created = await api(http, base, admin, "POST", "/api/keys", {"project": project, "name": "bench", "role": "member"})
    return str(created["key"])


async def put_budget(http: httpx.AsyncClient, base: str, admin: str, project: str, tokens: int, usd: float) -> str:
    body = {"project": project, "period": "day", "limit_tokens": tokens, "limit_usd": usd, "action": "block"}
    return str((await api(http, base, admin, "PUT", "/api/budgets", body))["id"])


def usd_limit_for(specs: list[Spec], limit_tokens: int) -> float:
    """A USD limit that binds about as often as the token limit.

    In a burst the budget fills with reservations, so which unit runs out first is decided by the
    reservations' USD per token: the limit is the token limit times that ratio over the whole mix.
    A reservation is aitp's worst case: the prompt counted with litellm's counter plus
    ``budgets.prompt_token_margin`` (20%) and 8, plus max_tokens (README, BudgetEnforcer.prompt_estimate).
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm  # slow (seconds); the caller runs this in a thread

    tokens = usd = 0.0
    for spec in specs:
        counted = litellm.token_counter(messages=chat_body(spec)["messages"])
        prompt = math.ceil(counted * (1 + PROMPT_MARGIN)) + 8
        tokens += prompt + spec.max_tokens
        usd += prompt * PRICE_IN + spec.max_tokens * PRICE_OUT
    return round(limit_tokens * usd / tokens, 7)


# ------------------------------------------------------------------- requests


def make_specs(count: int, seed: int) -> list[Spec]:
    rng = random.Random(seed)
    vocabulary = VOCABULARY.split()
    specs = []
    for i in range(count):
        words = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(*PROMPT_WORDS_RANGE)))
        stream = rng.random() < 0.5
        specs.append(Spec(i, i % REPLICAS, stream, rng.randint(*MAX_TOKENS_RANGE), f"write test cases for: {words}"))
    return specs


def chat_body(spec: Spec) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "turbo",
        "messages": [{"role": "user", "content": spec.prompt}],
        "max_tokens": spec.max_tokens,
    }
    if spec.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def read_refusal(out: Outcome, status: int, raw: bytes) -> None:
    out.status = status
    try:
        error = json.loads(raw)["error"]
        out.code, out.unit = error.get("code"), error.get("unit")
    except (ValueError, KeyError, TypeError):
        out.code = None
    if status != 429:
        out.error = f"HTTP {status}: {raw[:500].decode(errors='replace')}"


def read_usage(out: Outcome, data: dict[str, Any], cost: Any) -> None:
    usage = data.get("usage") or {}
    out.prompt_tokens = int(usage.get("prompt_tokens") or 0)
    out.completion_tokens = int(usage.get("completion_tokens") or 0)
    with contextlib.suppress(TypeError, ValueError):
        out.cost_usd = float(cost)


async def read_stream(out: Outcome, response: httpx.Response) -> None:
    got_usage = done = False
    async for line in response.aiter_lines():
        if not line.startswith("data: "):
            continue
        payload = line[6:]
        if payload == "[DONE]":
            done = True
            continue
        data = json.loads(payload)
        if "error" in data:
            out.error = f"error event in a 200 stream: {payload[:500]}"
        elif data.get("usage"):
            got_usage = True
            read_usage(out, data, (data.get("aitp") or {}).get("cost_usd"))
    if out.error is None and not (got_usage and done):
        out.error = f"stream ended without {'[DONE]' if got_usage else 'a usage chunk'}"


async def send(http: httpx.AsyncClient, base: str, key: str, spec: Spec) -> Outcome:
    out = Outcome(spec)
    headers = {"authorization": f"Bearer {key}"}
    started = time.perf_counter()
    try:
        async with http.stream("POST", f"{base}/v1/chat/completions", json=chat_body(spec), headers=headers) as resp:
            if resp.status_code != 200:
                read_refusal(out, resp.status_code, await resp.aread())
            else:
                out.status = 200
                capped = resp.headers.get("x-aitp-max-tokens")
                out.capped_max_tokens = int(capped) if capped else None
                if spec.stream:
                    await read_stream(out, resp)
                else:
                    read_usage(out, json.loads(await resp.aread()), resp.headers.get("x-aitp-cost-usd"))
    except (httpx.HTTPError, ValueError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    out.latency_s = time.perf_counter() - started
    return out


def client(connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits)


async def warm_up(replicas: list[Replica], keys: list[str]) -> None:
    """First calls load lazy parts (litellm paths, the token counter); keep them out of the measurements."""
    specs = [Spec(-1, 0, stream, 16, "warm up the gateway please") for stream in (False, True)]
    async with client(32) as http:
        calls = [send(http, r.url, k, s) for r in replicas for k in keys for s in specs]
        for out in await asyncio.gather(*calls):
            if not out.served:
                raise RuntimeError(f"warm-up request failed: {out.status} {out.code} {out.error}")


async def burst(setup: Setup, specs: list[Spec]) -> tuple[list[Outcome], float]:
    async with client(len(specs) + 8) as http:
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(send(http, setup.replicas[s.replica].url, setup.key, s) for s in specs))
        return list(outcomes), time.perf_counter() - started


async def paced(setup: Setup, per_key: int) -> dict[str, list[float]]:
    """Sequential non-stream requests, alternating a budgeted key and a key without any budget."""
    keys = {"budget": setup.paced_budget_key, "no budget": setup.free_key}
    latencies: dict[str, list[float]] = {name: [] for name in keys}
    async with client(8) as http:
        for i in range(per_key):
            order = list(keys) if i % 2 == 0 else list(reversed(keys))
            replica = setup.replicas[i % REPLICAS]
            for name in order:
                out = await send(http, replica.url, keys[name], Spec(i, 0, False, 32, "list three boundary values"))
                if not out.served:
                    raise RuntimeError(f"paced request failed: {out.status} {out.code} {out.error}")
                latencies[name].append(out.latency_s * 1000)
    return latencies


# ---------------------------------------------------------------------- ledger


async def ledger_state(http: httpx.AsyncClient, setup: Setup) -> Ledger:
    """The budget's status once every reservation is settled (streams settle just after [DONE])."""
    deadline = time.monotonic() + 15
    while True:
        doc = await api(http, setup.replicas[0].url, setup.admin_key, "GET", f"/api/budgets/{setup.budget_id}/status")
        status = doc["status"]
        tokens, usd = status["tokens"], status["usd"]
        state = Ledger(tokens["used"], usd["used"], tokens["reserved"], usd["reserved"], status["current_action"])
        if (state.reserved_tokens == 0 and state.reserved_usd < 1e-12) or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.2)


async def scrape(replicas: list[Replica]) -> Hist:
    """``aitp_ledger_seconds`` buckets summed over the replicas."""
    hist: Hist = {}
    async with httpx.AsyncClient(timeout=10) as http:
        for replica in replicas:
            text = (await http.get(f"{replica.url}/metrics")).text
            for family in text_string_to_metric_families(text):
                if family.name != "aitp_ledger_seconds":
                    continue
                for sample in family.samples:
                    if sample.name.endswith("_bucket"):
                        buckets = hist.setdefault(sample.labels["op"], {})
                        le = float(sample.labels["le"])
                        buckets[le] = buckets.get(le, 0.0) + sample.value
    return hist


def hist_delta(after: Hist, before: Hist) -> Hist:
    return {
        op: {le: count - before.get(op, {}).get(le, 0.0) for le, count in buckets.items()}
        for op, buckets in after.items()
    }


def hist_quantile(buckets: dict[float, float], q: float) -> tuple[float | None, bool]:
    """Like PromQL's histogram_quantile: linear inside the bucket. Returns (seconds, beyond the last bound)."""
    ordered = sorted(buckets.items())
    total = ordered[-1][1] if ordered else 0.0
    if total <= 0:
        return None, False
    rank = q * total
    low, below = 0.0, 0.0
    for le, cumulative in ordered:
        if cumulative >= rank:
            if math.isinf(le):
                return low, True
            if cumulative == below:
                return le, False
            return low + (le - low) * (rank - below) / (cumulative - below), False
        low, below = le, cumulative
    return low, True


def hist_count(buckets: dict[float, float]) -> int:
    return int(buckets.get(math.inf, 0.0))
