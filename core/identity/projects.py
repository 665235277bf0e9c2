"""Projects: the unit of isolation. Every key, budget, usage row and task belongs to one."""

from __future__ import annotations

import contextlib

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from core.clock import Clock
from core.errors import APIError, NotFound

from .principal import DEFAULT_PROJECT
from .tables import ProjectRow


class Conflict(APIError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


def project_view(row: ProjectRow) -> dict[str, object]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "created_at": row.created_at.isoformat().replace("+00:00", "Z"),
    }


class ProjectStore:
    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._clock = clock

    async def ensure_default(self) -> None:
        with contextlib.suppress(Conflict):
            await self.create(DEFAULT_PROJECT, "the project of the server admin key and keyless tools")

    async def create(self, project_id: str, description: str) -> ProjectRow:
        row = ProjectRow(id=project_id, name=project_id, description=description, created_at=self._clock.now())
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise Conflict(f"project '{project_id}' exists already", param="name") from None
        return row

    async def get(self, project_id: str) -> ProjectRow:
        async with self._sessions() as session:
            row = await session.get(ProjectRow, project_id)
        if row is None:
            raise NotFound(f"no project '{project_id}'; GET /api/projects lists them", code="project_not_found")
        return row

    async def find(self, only: str | None = None) -> list[ProjectRow]:
        query = select(ProjectRow).order_by(ProjectRow.id)
        if only is not None:
            query = query.where(ProjectRow.id == only)
        async with self._sessions() as session:
            return list((await session.scalars(query)).all())
