"""The browser runner's rows: stored specs (per project), fingerprints and cached heals per spec step."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Table, and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import Clock
from core.errors import NotFound
from core.timefmt import utc_iso

from .tables import BrowserFingerprintRow, BrowserHealRow, BrowserSpecRow

specs = cast(Table, BrowserSpecRow.__table__)
fingerprints = cast(Table, BrowserFingerprintRow.__table__)
heals = cast(Table, BrowserHealRow.__table__)


def spec_view(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "project": row["project_id"],
        "name": row["name"],
        "version": row["version"],
        "spec": row["body"],
        "created_at": utc_iso(row["created_at"]),
        "updated_at": utc_iso(row["updated_at"]),
    }


def heal_view(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "step": row["step"],
        "old_locator": row["old_locator"],
        "new_locator": row["new_locator"],
        "confidence": row["confidence"],
        "evidence": row["evidence"],
        "created_at": utc_iso(row["created_at"]),
    }


class BrowserStore:
    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    # -- specs ---------------------------------------------------------------------------------------------------

    async def create_spec(self, project_id: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        now = self._clock.now()
        row = {"id": uuid.uuid4().hex, "project_id": project_id, "name": name[:200], "body": body, "version": 1}
        row |= {"created_at": now, "updated_at": now}
        async with self._engine.begin() as conn:
            await conn.execute(insert(specs), row)
        return spec_view(row)

    async def get_spec(self, spec_id: str, scope: str | None) -> dict[str, Any]:
        query = select(specs).where(specs.c.id == spec_id)
        if scope is not None:
            query = query.where(specs.c.project_id == scope)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise NotFound(f"browser spec '{spec_id}' not found; list them with GET /api/browser/specs")
        return spec_view(row)

    async def list_specs(self, scope: str | None, limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
        where = specs.c.project_id == scope if scope is not None else specs.c.id.is_not(None)
        async with self._engine.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(specs).where(where))).scalar_one()
            rows = (
                (
                    await conn.execute(
                        select(specs).where(where).order_by(specs.c.updated_at.desc()).limit(limit).offset(offset)
                    )
                )
                .mappings()
                .all()
            )
        return int(total), [spec_view(r) for r in rows]

    async def replace_spec(self, spec_id: str, scope: str | None, name: str, body: dict[str, Any]) -> dict[str, Any]:
        current = await self.get_spec(spec_id, scope)
        values = {"name": name[:200], "body": body, "version": current["version"] + 1, "updated_at": self._clock.now()}
        async with self._engine.begin() as conn:
            await conn.execute(update(specs).where(specs.c.id == spec_id).values(**values))
            # A new version of the spec makes its cached heals moot: they were suggestions against the old one.
            await conn.execute(delete(heals).where(heals.c.spec_key == spec_id))
        return await self.get_spec(spec_id, scope)

    async def delete_spec(self, spec_id: str, scope: str | None) -> None:
        current = await self.get_spec(spec_id, scope)
        async with self._engine.begin() as conn:
            await conn.execute(delete(specs).where(specs.c.id == spec_id))
            for table in (heals, fingerprints):
                await conn.execute(
                    delete(table).where(and_(table.c.project_id == current["project"], table.c.spec_key == spec_id))
                )

    # -- fingerprints and heals ----------------------------------------------------------------------------------

    async def fingerprints(self, project_id: str, spec_key: str) -> dict[int, dict[str, Any]]:
        query = select(fingerprints).where(
            and_(fingerprints.c.project_id == project_id, fingerprints.c.spec_key == spec_key)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return {int(r["step"]): {"locator": r["locator"], "fingerprint": r["fingerprint"]} for r in rows}

    async def save_fingerprints(
        self, project_id: str, spec_key: str, found: dict[int, tuple[dict[str, Any], dict[str, Any]]]
    ) -> None:
        if not found:
            return
        now = self._clock.now()
        key = and_(fingerprints.c.project_id == project_id, fingerprints.c.spec_key == spec_key)
        rows = [
            {
                "project_id": project_id,
                "spec_key": spec_key,
                "step": step,
                "locator": loc,
                "fingerprint": fp,
                "updated_at": now,
            }
            for step, (loc, fp) in found.items()
        ]
        async with self._engine.begin() as conn:
            await conn.execute(delete(fingerprints).where(and_(key, fingerprints.c.step.in_(list(found)))))
            await conn.execute(insert(fingerprints), rows)

    async def heals(self, project_id: str, spec_key: str) -> dict[int, dict[str, Any]]:
        query = select(heals).where(and_(heals.c.project_id == project_id, heals.c.spec_key == spec_key))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return {int(r["step"]): heal_view(r) for r in rows}

    async def save_heal(self, project_id: str, spec_key: str, step: int, heal: dict[str, Any]) -> None:
        key = and_(heals.c.project_id == project_id, heals.c.spec_key == spec_key, heals.c.step == step)
        row = {"project_id": project_id, "spec_key": spec_key, "step": step, "created_at": self._clock.now()}
        row |= {k: heal[k] for k in ("old_locator", "new_locator", "confidence", "evidence")}
        async with self._engine.begin() as conn:
            await conn.execute(delete(heals).where(key))
            await conn.execute(insert(heals), row)
