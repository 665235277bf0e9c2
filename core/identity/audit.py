"""The audit log: every admin action, who did it, to what, and from which request."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import Clock

from .principal import Principal
from .tables import AuditRow


class AuditLog:
    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    async def record(
        self,
        principal: Principal,
        action: str,
        *,
        project_id: str | None,
        target: str | None,
        detail: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(AuditRow).values(
                    at=self._clock.now(),
                    actor=principal.key_id,
                    actor_role="root" if principal.root else principal.role,
                    project_id=project_id,
                    action=action,
                    target=target,
                    detail=detail,
                    request_id=request_id,
                )
            )

    async def find(self, project_id: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit).offset(offset)
        if project_id is not None:
            query = query.where(AuditRow.project_id == project_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            {**dict(row), "at": row["at"].isoformat().replace("+00:00", "Z") if row["at"] else None} for row in rows
        ]
