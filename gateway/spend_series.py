"""Spend over time: ``GET /api/usage/series`` buckets a window's calls by hour or day, one series per model or tier.

Buckets are UTC and every bucket of the window is present (zeros where no call
fell), so a chart needs no gap filling; a bucket is labelled by its start,
``2026-12-07T16:00:00Z`` for an hour and ``2026-12-07`` for a day. The bucket
key is computed in SQL (``to_char`` on PostgreSQL, the stored UTC text on
SQLite), as the day grouping of :mod:`gateway.reports` is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, String, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import InvalidRequest

from .usage import UsageRecord

BUCKETS = ("day", "hour")
STACKS = ("tier", "model")
MAX_BUCKETS = 2000  # about 83 days of hours; a chart has no room for more bars
NONE_KEY = "(none)"
_STEP = {"day": timedelta(days=1), "hour": timedelta(hours=1)}
_PG_FORMAT = {"day": "'YYYY-MM-DD'", "hour": "'YYYY-MM-DD HH24'"}
_TEXT_WIDTH = {"day": "10", "hour": "13"}  # 'YYYY-MM-DD' and 'YYYY-MM-DD HH' of SQLite's stored text

C = UsageRecord.__table__.c


def _bucket_column(bucket: str, dialect: str) -> ColumnElement[str]:
    # Literals rather than bound parameters, so that PostgreSQL sees the GROUP BY expression as the selected one.
    if dialect == "postgresql":
        utc = func.timezone(literal_column("'UTC'"), C.created_at)
        return func.to_char(utc, literal_column(_PG_FORMAT[bucket]), type_=String)
    return func.substr(C.created_at, literal_column("1"), literal_column(_TEXT_WIDTH[bucket]), type_=String)


def _label(bucket: str, raw: str) -> str:
    return raw if bucket == "day" else f"{raw[:10]}T{raw[11:13]}:00:00Z"


def bucket_labels(start: datetime, end: datetime, bucket: str) -> list[str]:
    """Every bucket that [start, end) touches, oldest first."""
    if bucket == "day":
        first = start.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        first = start.replace(minute=0, second=0, microsecond=0)
    step = _STEP[bucket]
    count = int((end - first) / step) + 1
    if count > MAX_BUCKETS:
        raise InvalidRequest(
            f"the window holds {count} {bucket} buckets, more than {MAX_BUCKETS}; shorten it or use bucket=day",
            param="bucket",
        )
    labels: list[str] = []
    at = first
    while at < end:
        stamp = at.astimezone(UTC)
        labels.append(stamp.strftime("%Y-%m-%d") if bucket == "day" else stamp.strftime("%Y-%m-%dT%H:00:00Z"))
        at += step
    return labels


async def stacked_series(
    conn: AsyncConnection,
    filters: Sequence[ColumnElement[bool]],
    start: datetime,
    end: datetime,
    bucket: str,
    stack: str,
) -> dict[str, Any]:
    """``{bucket, stack, buckets, series, totals}``; each series has per-bucket requests, tokens and cost."""
    labels = bucket_labels(start, end, bucket)
    index = {label: i for i, label in enumerate(labels)}
    when = _bucket_column(bucket, conn.dialect.name)
    by = C.tier if stack == "tier" else C.model_used
    query = (
        select(
            when,
            by,
            func.count(),
            func.coalesce(func.sum(C.prompt_tokens + C.completion_tokens), 0),
            func.coalesce(func.sum(C.cost_usd), 0.0),
        )
        .where(*filters)
        .group_by(when, by)
    )
    series: dict[str, dict[str, list[Any]]] = {}
    for raw, name, requests, tokens, cost in await conn.execute(query):
        at = index.get(_label(bucket, str(raw)))
        if at is None:  # cannot happen for rows inside the window; kept out rather than misplaced
            continue
        line = series.setdefault(
            name or NONE_KEY,
            {"requests": [0] * len(labels), "tokens": [0] * len(labels), "cost_usd": [0.0] * len(labels)},
        )
        line["requests"][at] += int(requests)
        line["tokens"][at] += int(tokens)
        line["cost_usd"][at] = round(line["cost_usd"][at] + float(cost), 10)
    out = [
        {
            "key": name,
            **line,
            "total_requests": sum(line["requests"]),
            "total_tokens": sum(line["tokens"]),
            "total_cost_usd": round(sum(line["cost_usd"]), 10),
        }
        for name, line in sorted(series.items())
    ]
    return {
        "bucket": bucket,
        "stack": stack,
        "buckets": labels,
        "series": out,
        "totals": {
            "requests": sum(s["total_requests"] for s in out),
            "tokens": sum(s["total_tokens"] for s in out),
            "cost_usd": round(sum(s["total_cost_usd"] for s in out), 10),
        },
    }


async def spend_of_scope(
    conn: AsyncConnection, filters: Sequence[ColumnElement[bool]], scope: str, scope_id: str | None
) -> tuple[int, float]:
    """Tokens and USD of the calls a budget scope covers (``filters`` already hold the project and window)."""
    clauses = list(filters)
    if scope == "key":
        clauses.append(C.key_id == scope_id)
    elif scope == "user":
        clauses.append(C.user == scope_id)
    query = select(
        func.coalesce(func.sum(C.prompt_tokens + C.completion_tokens), 0), func.coalesce(func.sum(C.cost_usd), 0.0)
    ).where(*clauses)
    tokens, cost = (await conn.execute(query)).one()
    return int(tokens), float(cost)
