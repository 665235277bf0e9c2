"""The prompt registry: publish immutable versions, move labels, resolve what a call runs.

- **Versions** are numbered per prompt from 1 and content-hashed; rows are only
  ever inserted. Publishing content that exists returns the existing version.
  Two replicas publishing at once are kept apart by the unique constraints
  (name, version) and (name, content_hash): the loser of the race looks again
  and finds the winner's row (same content) or takes the next number.
- **Labels** are read from the database on every use, one primary-key read, so
  a move or a rollback takes effect at once on every replica. Versions cannot
  change, so each process keeps the ones it used compiled in an LRU cache.
- **Moves** compare and set on the label's ``revision``: a move that lost a race
  reads the label again and retries, so concurrent moves never lose one
  another and each knows exactly which version it replaced (kept as
  ``previous_version``, where a rollback goes).
- **Canary.** A call that asks for ``production`` (or names no label or
  version) gets the ``canary`` label's version with probability ``weight``;
  the draw comes from a ``random.Random`` owned by the registry, seedable for
  tests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import logging
import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import RowMapping, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import Clock
from core.errors import InvalidRequest, NotFound, ServiceUnavailable
from core.identity.projects import Conflict

from .sandbox import RenderLimits
from .spec import Draft, PromptSpec
from .tables import PromptLabelRow, PromptVersionRow
from .template import CompiledPrompt, compile_prompt, sandbox

log = logging.getLogger("aitp.gateway.prompts")

PRODUCTION = "production"
CANARY = "canary"
FILE_ACTOR = "file"
_ATTEMPTS = 50
V = PromptVersionRow.__table__.c
L = PromptLabelRow.__table__.c


@dataclass(frozen=True, slots=True)
class PromptVersion:
    name: str
    version: int
    content_hash: str
    source_text: str
    created_at: datetime
    created_by: str | None
    source: str
    compiled: CompiledPrompt

    @property
    def spec(self) -> PromptSpec:
        return self.compiled.spec

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class Move:
    """One label change: what it pointed at before (None: it was created) and after."""

    name: str
    label: str
    from_version: int | None
    to_version: int
    revision: int

    def detail(self) -> dict[str, Any]:
        return {"label": self.label, "from": self.from_version, "to": self.to_version, "revision": self.revision}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class PromptRegistry:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock,
        rng: random.Random | None = None,
        cache_size: int = 512,
        limits: RenderLimits | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._env = sandbox(limits)
        self._rng = rng or random.Random()
        self._cache: OrderedDict[tuple[str, int], PromptVersion] = OrderedDict()
        self._cache_size = cache_size

    def check(self, draft: Draft) -> CompiledPrompt:
        """Compile a draft without storing it: 400 on a syntax error or an undeclared variable."""
        return compile_prompt(self._env, draft, f"{draft.spec.name}@new")

    # --- versions ------------------------------------------------------------
    async def publish(self, draft: Draft, *, source: str, created_by: str | None) -> tuple[PromptVersion, bool]:
        """Store ``draft`` as the next version, or return the version with the same content (created False)."""
        # Compiling is CPU work linear in the template's size (nothing it computes runs): off the event loop.
        compiled = await asyncio.to_thread(self.check, draft)
        spec = draft.spec
        digest = spec.content_hash()
        for _ in range(_ATTEMPTS):
            existing = await self._by_hash(spec.name, digest)
            if existing is not None:
                return existing, False
            async with self._engine.connect() as conn:
                latest = (await conn.execute(select(func.max(V.version)).where(V.name == spec.name))).scalar()
            row = {
                "name": spec.name,
                "version": int(latest or 0) + 1,
                "content_hash": digest,
                "spec": spec.normalised(),
                "source_text": draft.text,
                "created_at": self._clock.now(),
                "created_by": created_by,
                "source": source,
            }
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(insert(PromptVersionRow).values(**row))
            except IntegrityError:
                continue  # another replica stored this content or took this number: look again
            return await self._remember(row, compiled), True
        raise ServiceUnavailable(f"publishing '{spec.name}' kept colliding with concurrent publishes; retry")

    async def get(self, name: str, version: int) -> PromptVersion:
        cached = self._cache.get((name, version))
        if cached is not None:
            self._cache.move_to_end((name, version))
            return cached
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(*V).where(V.name == name, V.version == version))).mappings().first()
        if row is None:
            raise await self._missing_version(name, version)
        return await self._remember(row)

    async def versions(self, name: str) -> Sequence[RowMapping]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(*V).where(V.name == name).order_by(V.version))).mappings().all()
        if not rows:
            raise _unknown(name)
        return rows

    async def prompts(self) -> list[dict[str, Any]]:
        """Every prompt with its newest version and its labels."""
        newest = select(V.name, func.max(V.version).label("latest"), func.count().label("count")).group_by(V.name)
        newest_q = newest.subquery()
        query = (
            select(V.name, V.version, V.spec, V.created_at, newest_q.c.count)
            .join(newest_q, (V.name == newest_q.c.name) & (V.version == newest_q.c.latest))
            .order_by(V.name)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
            labels = (await conn.execute(select(*L).order_by(L.name, L.label))).mappings().all()
        by_name: dict[str, list[RowMapping]] = {}
        for label in labels:
            by_name.setdefault(label["name"], []).append(label)
        return [
            {
                "name": row["name"],
                "description": row["spec"].get("description", ""),
                "tier": row["spec"].get("tier", "auto"),
                "latest_version": row["version"],
                "versions": row["count"],
                "updated_at": _aware(row["created_at"]),
                "labels": by_name.get(row["name"], []),
            }
            for row in rows
        ]

    async def diff(self, name: str, old: int, new: int) -> str:
        a, b = await self.get(name, old), await self.get(name, new)
        lines = difflib.unified_diff(
            a.source_text.splitlines(keepends=True), b.source_text.splitlines(keepends=True), a.tag, b.tag
        )
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

    # --- labels --------------------------------------------------------------
    async def labels(self, name: str) -> Sequence[RowMapping]:
        async with self._engine.connect() as conn:
            return (await conn.execute(select(*L).where(L.name == name).order_by(L.label))).mappings().all()

    async def resolve(self, name: str, *, version: int | None = None, label: str | None = None) -> PromptVersion:
        """The version a call runs: the one named, or the label's (production by default, with the canary split)."""
        if version is not None:
            return await self.get(name, version)
        wanted = label or PRODUCTION
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(L.label, L.version, L.weight).where(L.name == name, L.label.in_((wanted, CANARY)))
                )
            ).all()
        found = {r.label: r for r in rows}
        chosen = found.get(wanted)
        if chosen is None:
            raise await self._missing_label(name, wanted)
        number = int(chosen.version)
        canary = found.get(CANARY)
        if wanted == PRODUCTION and canary is not None and canary.weight and self._rng.random() < canary.weight:
            number = int(canary.version)
        return await self.get(name, number)

    async def set_label(
        self, name: str, label: str, version: int, *, weight: float | None, pinned: bool, by: str | None
    ) -> Move:
        """Point ``label`` at ``version`` (creating the label); ``weight`` None keeps the current weight."""
        if weight is not None and label != CANARY:
            raise InvalidRequest(
                f"weight applies to the '{CANARY}' label only (the share of production calls it takes)",
                param="weight",
            )
        await self.get(name, version)
        for _ in range(_ATTEMPTS):
            current = await self._label(name, label)
            if current is None:
                move = await self._create_label(name, label, version, weight, pinned, by)
            else:
                move = await self._compare_and_set(current, version, weight, pinned, by)
            if move is not None:
                return move
            await asyncio.sleep(self._rng.uniform(0, 0.005))  # lost a race: read the label again
        raise Conflict(f"label '{label}' of '{name}' kept moving under concurrent changes; retry")

    async def rollback(self, name: str, label: str, version: int | None, *, by: str | None) -> Move:
        """Move ``label`` back to ``version``, or to the version it pointed at before its last move."""
        if version is not None:
            return await self.set_label(name, label, version, weight=None, pinned=True, by=by)
        current = await self._label(name, label)
        if current is None:
            raise await self._missing_label(name, label)
        target = current["previous_version"]
        if target is None:
            raise Conflict(
                f"label '{label}' of '{name}' has pointed at version {current['version']} since it was created; "
                "there is nothing to roll back to: name the version to move it to",
                param="version",
            )
        move = await self._compare_and_set(current, int(target), None, True, by)
        if move is None:
            raise Conflict(f"label '{label}' of '{name}' moved while rolling back; check it and retry")
        return move

    async def delete_label(self, name: str, label: str) -> RowMapping:
        if label == PRODUCTION:
            raise Conflict(
                f"the '{PRODUCTION}' label cannot be removed: every call without a version uses it; "
                "move it (PUT) or roll it back instead"
            )
        current = await self._label(name, label)
        if current is None:
            raise await self._missing_label(name, label)
        async with self._engine.begin() as conn:
            await conn.execute(delete(PromptLabelRow).where(L.name == name, L.label == label))
        return current

    async def ensure_production(self, name: str, version: int, *, by: str | None) -> Move | None:
        """Give a prompt published through the API its ``production`` label when it has none yet."""
        if await self._label(name, PRODUCTION) is not None:
            return None
        return await self._create_label(name, PRODUCTION, version, None, False, by)

    async def follow_file(self, name: str, version: int) -> Move | None:
        """Start-up: ``production`` follows the version loaded from the prompt's file, unless an admin pinned it."""
        for _ in range(_ATTEMPTS):
            current = await self._label(name, PRODUCTION)
            if current is None:
                move = await self._create_label(name, PRODUCTION, version, None, False, FILE_ACTOR)
            elif current["version"] == version:
                return None
            elif current["pinned"]:
                log.warning(
                    "production of %s stays at version %s (pinned by %s); the file's version %s is published "
                    "but not live: move the label to it, or unpin it, to serve it",
                    name,
                    current["version"],
                    current["updated_by"],
                    version,
                )
                return None
            else:
                move = await self._compare_and_set(current, version, None, False, FILE_ACTOR)
            if move is not None:
                return move
            await asyncio.sleep(self._rng.uniform(0, 0.005))
        raise ServiceUnavailable(f"production label of '{name}' kept moving while loading its file; restart")

    async def _label(self, name: str, label: str) -> RowMapping | None:
        async with self._engine.connect() as conn:
            return (await conn.execute(select(*L).where(L.name == name, L.label == label))).mappings().first()

    async def _create_label(
        self, name: str, label: str, version: int, weight: float | None, pinned: bool, by: str | None
    ) -> Move | None:
        values = {
            "name": name,
            "label": label,
            "version": version,
            "previous_version": None,
            "weight": weight,
            "pinned": pinned,
            "revision": 1,
            "updated_at": self._clock.now(),
            "updated_by": by,
        }
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(PromptLabelRow).values(**values))
        except IntegrityError:
            return None  # created meanwhile by another call
        return Move(name, label, None, version, 1)

    async def _compare_and_set(
        self, current: Mapping[Any, Any], version: int, weight: float | None, pinned: bool, by: str | None
    ) -> Move | None:
        changed = current["version"] != version
        revision = int(current["revision"]) + 1
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(PromptLabelRow)
                .where(L.name == current["name"], L.label == current["label"], L.revision == current["revision"])
                .values(
                    version=version,
                    previous_version=current["version"] if changed else current["previous_version"],
                    weight=current["weight"] if weight is None else weight,
                    pinned=pinned,
                    revision=revision,
                    updated_at=self._clock.now(),
                    updated_by=by,
                )
            )
        if result.rowcount != 1:
            return None
        return Move(current["name"], current["label"], int(current["version"]), version, revision)

    # --- helpers -------------------------------------------------------------
    async def _by_hash(self, name: str, digest: str) -> PromptVersion | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(*V).where(V.name == name, V.content_hash == digest))).mappings().first()
        return None if row is None else await self._remember(row)

    async def _remember(self, row: Mapping[Any, Any], compiled: CompiledPrompt | None = None) -> PromptVersion:
        key = (str(row["name"]), int(row["version"]))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        tag = f"{key[0]}@{key[1]}"
        if compiled is None:
            draft = Draft(spec=PromptSpec.model_validate(row["spec"]), text=row["source_text"])
            compiled = await asyncio.to_thread(compile_prompt, self._env, draft, tag)
        entry = PromptVersion(
            name=key[0],
            version=key[1],
            content_hash=row["content_hash"],
            source_text=row["source_text"],
            created_at=_aware(row["created_at"]),
            created_by=row["created_by"],
            source=row["source"],
            compiled=dataclasses.replace(compiled, tag=tag),
        )
        self._cache[key] = entry
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return entry

    async def _numbers(self, name: str) -> list[int]:
        async with self._engine.connect() as conn:
            return list((await conn.execute(select(V.version).where(V.name == name).order_by(V.version))).scalars())

    async def _missing_version(self, name: str, version: int) -> NotFound:
        numbers = await self._numbers(name)
        if not numbers:
            return _unknown(name)
        return NotFound(
            f"prompt '{name}' has no version {version}; it has versions {_ranges(numbers)}",
            param="version",
            code="prompt_version_not_found",
        )

    async def _missing_label(self, name: str, label: str) -> NotFound:
        if not await self._numbers(name):
            return _unknown(name)
        names = ", ".join(str(r["label"]) for r in await self.labels(name)) or "none"
        return NotFound(
            f"prompt '{name}' has no label '{label}' (its labels: {names}); set it with "
            f"PUT /api/prompts/{name}/labels/{label}",
            param="label",
            code="prompt_label_not_found",
        )


def _unknown(name: str) -> NotFound:
    return NotFound(f"no prompt '{name}'; GET /api/prompts lists them", param="name", code="prompt_not_found")


def _ranges(numbers: list[int]) -> str:
    return f"1 to {numbers[-1]}" if numbers == list(range(1, len(numbers) + 1)) else ", ".join(map(str, numbers))
