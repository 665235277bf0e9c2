"""Budget counters rebuilt from ``usage_records``, the durable record of every call's spend.

A budget counter ``budget:<id>:<unit>`` counts, in one window of the budget's
period, the tokens (prompt + completion) or the USD of the calls the budget
applied to since it was created. Settling charges exactly those numbers to
every budget of a call, and the call's usage row carries them, so the same sum
over the rows rebuilds the counter:

- a project budget: the rows of the project;
- a key budget: the rows of the project made with that key;
- a user budget: the rows of the project whose ``user`` is that end user;

with ``created_at`` inside the window (from the later of the window's start
and the budget's creation; a total budget's window has no end). A row's
``created_at`` is when its call began, a moment before it reserved, so a call
that straddles a period boundary may be rebuilt into the earlier window.
Rate-limit windows are not rebuilt: they last a minute. What a rebuild cannot
see yet (rows not flushed, calls in flight) is described in
:mod:`gateway.ledger.rebuild`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import Select, func, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from core.settings import LOCAL_ECHO
from gateway.ledger import LedgerUnavailable
from gateway.ledger.windows import Window
from gateway.usage import UsageRecord

from .enforcer import budget_counter_of, counter
from .tables import BudgetRow

_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout, OSError, TimeoutError)


class BudgetUsageRecord:
    """:class:`~gateway.ledger.DurableRecord` for budget counters, reading the app's database."""

    def __init__(self, engine: AsyncEngine, *, timeout_s: float = 5.0) -> None:
        self._engine = engine
        self._timeout_s = timeout_s

    def tracks(self, counter_id: str) -> bool:
        return budget_counter_of(counter_id) is not None

    async def durable_usage(self, wanted: Sequence[tuple[str, Window]]) -> Mapping[tuple[str, str], float]:
        by_budget: dict[tuple[str, str], Window] = {}
        for counter_id, window in wanted:
            parsed = budget_counter_of(counter_id)
            if parsed is not None:
                by_budget[(parsed[0], window.key)] = window
        if not by_budget:
            return {}
        out: dict[tuple[str, str], float] = {}
        try:
            async with asyncio.timeout(self._timeout_s), AsyncSession(self._engine) as session:
                ids = sorted({budget_id for budget_id, _ in by_budget})
                found = await session.scalars(select(BudgetRow).where(BudgetRow.id.in_(ids)))
                budgets = {row.id: row for row in found}
                for (budget_id, window_key), window in by_budget.items():
                    budget = budgets.get(budget_id)
                    if budget is None:
                        continue  # deleted: nothing applies to it any more
                    tokens, usd = (await session.execute(_spent(budget, window))).one()
                    out[(counter(budget, "tokens"), window_key)] = float(tokens)
                    out[(counter(budget, "usd"), window_key)] = float(usd)
        except _UNAVAILABLE as exc:
            raise LedgerUnavailable(
                f"cannot rebuild budget counters from usage_records: {type(exc).__name__}: {exc}"
            ) from exc
        return out


def _spent(budget: BudgetRow, window: Window) -> Select[int, float]:
    """Tokens and USD of the usage rows a budget counts in one window."""
    u = UsageRecord
    since = _utc(budget.created_at)
    if window.start is not None and window.start > since:
        since = window.start
    # local/echo calls are never charged (see ChatService._admit), so they are not counted back either.
    clauses = [u.project_id == budget.project_id, u.created_at >= since, u.model_used.is_distinct_from(LOCAL_ECHO)]
    if window.end is not None:
        clauses.append(u.created_at < window.end)
    if budget.scope == "key":
        clauses.append(u.key_id == budget.scope_id)
    elif budget.scope == "user":
        clauses.append(u.user == budget.scope_id)
    return select(
        func.coalesce(func.sum(u.prompt_tokens + u.completion_tokens), 0),
        func.coalesce(func.sum(u.cost_usd), 0.0),
    ).where(*clauses)


def _utc(moment: datetime) -> datetime:
    # SQLite gives timestamps back naive; they were written in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
