"""Per-version results of one prompt, from ``usage_records``: ``GET /api/prompts/{name}/stats``.

Every gateway call made with a prompt records its name and version, so the
versions of a prompt compare like releases:

- **requests** counts client requests; a cascade's two upstream calls (the
  turbo answer that broke the schema, then plus) are one request of two
  ``upstream_calls``, and its tokens and cost are their sum.
- **error_rate**: requests with an upstream call that failed (HTTP status
  400 or more, client disconnects included) over requests.
- **schema_failure_rate**: requests whose turbo answer broke the response
  schema (a ``schema_failed`` row) over requests.
- **latency** is per request (its slowest row, which timed the whole
  request), as nearest-rank p50 and p95.
- **acceptance_rate** is accepted over reviewed test cases generated with
  the version (an :data:`AcceptanceSource` supplies the counts); null
  until a case of that version has been reviewed.

The window (``from``/``to``, default the last 30 days) and project scope are
those of ``/api/usage``: the root key sees every project or one, any other key
its own project's calls only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.reports import collected, floats, percentile
from gateway.usage import UsageRecord

C = UsageRecord.__table__.c

# (prompt name, from, to, project or None for all) -> {version: (accepted, reviewed)}
AcceptanceSource = Callable[[str, datetime, datetime, str | None], Awaitable[dict[int, tuple[int, int]]]]


@dataclass(slots=True)
class VersionStats:
    requests: int = 0
    upstream_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    errors: int = 0
    schema_failures: int = 0
    latencies: Sequence[float] = ()
    accepted: int = 0
    reviewed: int = 0

    def view(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        n = self.requests
        return {
            "requests": n,
            "upstream_calls": self.upstream_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cost_usd": round(self.cost_usd, 10),
            "cost_per_request_usd": round(self.cost_usd / n, 10) if n else None,
            "errors": self.errors,
            "error_rate": round(self.errors / n, 6) if n else None,
            "schema_failures": self.schema_failures,
            "schema_failure_rate": round(self.schema_failures / n, 6) if n else None,
            "p50_latency_ms": percentile(ordered, 50),
            "p95_latency_ms": percentile(ordered, 95),
            "reviewed_cases": self.reviewed,
            "accepted_cases": self.accepted,
            "acceptance_rate": round(self.accepted / self.reviewed, 6) if self.reviewed else None,
        }


async def version_stats(
    engine: AsyncEngine, name: str, start: datetime, end: datetime, project: str | None
) -> dict[int, VersionStats]:
    """Usage of prompt ``name`` in [start, end), per version (only versions that were called)."""
    dialect = engine.dialect.name
    if dialect == "sqlite":
        # SQLite keeps UTC wall time as text: compare with naive UTC in the same format.
        start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    where = [C.prompt_name == name, C.prompt_version.is_not(None), C.created_at >= start, C.created_at < end]
    if project is not None:
        where.append(C.project_id == project)
    per_request = (
        select(
            C.prompt_version.label("version"),
            func.count().label("calls"),
            func.sum(C.prompt_tokens).label("prompt_tokens"),
            func.sum(C.completion_tokens).label("completion_tokens"),
            func.sum(C.cost_usd).label("cost"),
            func.max(C.latency_ms).label("latency"),
            func.max(case((C.http_status >= 400, 1), else_=0)).label("failed"),
            func.max(case((C.status == "schema_failed", 1), else_=0)).label("schema_failed"),
        )
        .where(*where)
        .group_by(C.prompt_version, C.request_id)
        .subquery()
    )
    r = per_request.c
    query = select(
        r.version,
        func.count(),
        func.sum(r.calls),
        func.sum(r.prompt_tokens),
        func.sum(r.completion_tokens),
        func.sum(r.cost),
        func.sum(r.failed),
        func.sum(r.schema_failed),
        collected(dialect, r.latency),
    ).group_by(r.version)
    out: dict[int, VersionStats] = {}
    async with engine.connect() as conn:
        for version, requests, calls, prompt, completion, cost, failed, schema, latencies in await conn.execute(query):
            out[int(version)] = VersionStats(
                requests=int(requests),
                upstream_calls=int(calls or 0),
                prompt_tokens=int(prompt or 0),
                completion_tokens=int(completion or 0),
                cost_usd=float(cost or 0.0),
                errors=int(failed or 0),
                schema_failures=int(schema or 0),
                latencies=floats(latencies),
            )
    return out
