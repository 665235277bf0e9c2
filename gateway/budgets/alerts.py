"""Budget alerts: a row, a log line, a metric and a webhook POST (retried) per threshold crossing."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from core.clock import Clock

from .tables import AlertRow, BudgetRow

log = logging.getLogger("aitp.budgets.alerts")


class _Retryable(Exception):
    pass


class AlertSink:
    def __init__(
        self, engine: AsyncEngine, registry: CollectorRegistry, webhook_url: str | None, attempts: int, clock: Clock
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._webhook_url = webhook_url
        self._attempts = attempts
        self._tasks: set[asyncio.Task[None]] = set()
        self.fired = Counter(
            "aitp_budget_alerts_total", "Budget threshold crossings", ["unit", "threshold"], registry=registry
        )

    async def emit(
        self, budget: BudgetRow, unit: str, threshold: float, used: float, limit: float, window: str
    ) -> None:
        now = self._clock.now()
        async with self._engine.begin() as conn:
            result = await conn.execute(
                insert(AlertRow)
                .values(
                    budget_id=budget.id,
                    project_id=budget.project_id,
                    threshold=threshold,
                    unit=unit,
                    window=window,
                    used=used,
                    limit=limit,
                    created_at=now,
                    webhook_status="pending" if self._webhook_url else None,
                )
                .returning(AlertRow.id)
            )
            alert_id = int(result.scalar_one())
        self.fired.labels(unit, f"{threshold:g}").inc()
        log.warning(
            "budget %s crossed %d%% of its %s limit: %.6g of %.6g",
            budget.name,
            round(threshold * 100),
            unit,
            used,
            limit,
            extra={"budget_id": budget.id, "project_id": budget.project_id, "window": window},
        )
        if self._webhook_url:
            payload = {
                "type": "budget.threshold_crossed",
                "alert_id": alert_id,
                "budget": {"id": budget.id, "name": budget.name, "project": budget.project_id},
                "scope": budget.scope,
                "scope_id": budget.scope_id,
                "period": budget.period,
                "window": window,
                "unit": unit,
                "threshold": threshold,
                "used": used,
                "limit": limit,
                "action": budget.action,
                "at": now.isoformat().replace("+00:00", "Z"),
            }
            task = asyncio.create_task(self._deliver(alert_id, payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, alert_id: int, payload: dict[str, Any]) -> None:
        assert self._webhook_url is not None
        status = "failed"
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(self._attempts),
                    wait=wait_exponential(multiplier=0.2, max=5),
                    retry=retry_if_exception_type((_Retryable, httpx.HTTPError)),
                    reraise=True,
                ):
                    with attempt:
                        response = await client.post(self._webhook_url, json=payload)
                        if response.status_code >= 500 or response.status_code == 429:
                            raise _Retryable(f"webhook answered {response.status_code}")
                        status = "delivered" if response.is_success else f"rejected_{response.status_code}"
        except Exception as exc:
            log.error("budget alert webhook failed after %d attempts: %s", self._attempts, exc)
        async with self._engine.begin() as conn:
            await conn.execute(update(AlertRow).where(AlertRow.id == alert_id).values(webhook_status=status))

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def find(self, project_id: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        query = select(AlertRow).order_by(AlertRow.id.desc()).limit(limit).offset(offset)
        if project_id is not None:
            query = query.where(AlertRow.project_id == project_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [{**dict(r), "created_at": r["created_at"].isoformat().replace("+00:00", "Z")} for r in rows]
