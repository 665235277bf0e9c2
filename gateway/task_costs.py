"""What a task's model calls cost, from the usage rows that carry its id (exact, not estimated)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.identity.principal import Principal

from .usage import UsageRecord


@dataclass(frozen=True, slots=True)
class TaskCost:
    tokens: int = 0
    cost_usd: float = 0.0
    calls_by_tier: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        """'3,210 tokens, $0.0012, turbo 2 / plus 1'."""
        tiers = " / ".join(f"{tier} {n}" for tier, n in sorted(self.calls_by_tier.items()))
        return f"{self.tokens:,} tokens, ${self.cost_usd:.4f}" + (f", {tiers}" if tiers else "")


class TaskCosts:
    def __init__(self, db: AsyncEngine) -> None:
        self._db = db

    async def of(self, principal: Principal, task_id: str) -> TaskCost:
        """The task's spend; a task of another project costs nothing here, as if it did not exist."""
        row = UsageRecord
        query = (
            select(
                row.tier,
                func.count(),
                func.coalesce(func.sum(row.prompt_tokens + row.completion_tokens), 0),
                func.coalesce(func.sum(row.cost_usd), 0.0),
            )
            .where(row.task_id == task_id)
            .group_by(row.tier)
        )
        project = principal.scope()
        if project is not None:
            query = query.where(row.project_id == project)
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        tokens = sum(int(r[2]) for r in rows)
        cost = sum(float(r[3]) for r in rows)
        return TaskCost(tokens=tokens, cost_usd=cost, calls_by_tier={str(r[0] or "none"): int(r[1]) for r in rows})
