"""Prompt-registry operations for every interface: list, show, diff, render, stats; publish, labels, rollback.

Any valid key may read and render; publishing, moving labels and rolling
back need the server admin key, since prompts are platform-wide. Every change
is written to the audit log.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Annotated, Any, NoReturn

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import Clock
from core.errors import InvalidRequest
from core.identity.principal import Principal
from core.identity.projects import Conflict
from core.identity.routes import Identity
from core.timefmt import utc_iso
from core.validation import INT32_MAX, Int32, Json, Text, check_int, parse
from gateway.reports import DEFAULT_WINDOW
from gateway.schemas import PromptRef

from .registry import PRODUCTION, Move, PromptRegistry, PromptVersion
from .spec import MAX_NAME_CHARS, Draft, check_label
from .stats import AcceptanceSource, VersionStats, version_stats
from .use import prepare


class LabelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Int32 = Field(ge=1)
    weight: float | None = Field(default=None, ge=0, le=1, description="canary: share of production calls")
    pinned: bool = Field(default=True, description="false hands production back to the prompt's file")


class RollbackSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Annotated[str, Text(64, 1)] = PRODUCTION
    version: Int32 | None = Field(default=None, ge=1, description="default: where the label pointed before")


class RenderSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Int32 | None = Field(default=None, ge=1)
    label: Annotated[str, Text(64, 1)] | None = None
    variables: Annotated[dict[str, Any], Json()] = Field(default_factory=dict)


def version_view(version: PromptVersion, full: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "name": version.name,
        "version": version.version,
        "content_hash": version.content_hash,
        "description": version.spec.description,
        "tier": version.spec.tier,
        "source": version.source,
        "created_at": utc_iso(version.created_at),
        "created_by": version.created_by,
    }
    if full:
        view["spec"] = version.spec.normalised()
        view["yaml"] = version.source_text
    return view


def row_version_view(row: RowMapping) -> dict[str, Any]:
    spec = row["spec"]
    return {
        "version": row["version"],
        "content_hash": row["content_hash"],
        "description": spec.get("description", ""),
        "tier": spec.get("tier", "auto"),
        "source": row["source"],
        "created_at": utc_iso(row["created_at"]),
        "created_by": row["created_by"],
    }


def label_view(row: RowMapping) -> dict[str, Any]:
    return {
        "label": row["label"],
        "version": row["version"],
        "previous_version": row["previous_version"],
        "weight": row["weight"],
        "pinned": row["pinned"],
        "revision": row["revision"],
        "updated_at": utc_iso(row["updated_at"]),
        "updated_by": row["updated_by"],
    }


def check_name(name: str) -> str:
    # Longer names cannot exist (the column is String(128)); a 400 says so rather than a failed lookup.
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS:
        size = len(name) if isinstance(name, str) else type(name).__name__
        raise InvalidRequest(f"prompt names are at most {MAX_NAME_CHARS} characters; this one has {size}", param="name")
    return name


def _label(label: str) -> str:
    try:
        return check_label(label)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="label") from None


class PromptService:
    def __init__(
        self,
        registry: PromptRegistry,
        identity: Identity,
        usage_db: AsyncEngine,
        clock: Clock,
        acceptance: AcceptanceSource | None = None,
    ) -> None:
        self.registry = registry
        self._identity = identity
        self._usage_db = usage_db
        self._clock = clock
        self._acceptance = acceptance

    # --- reading -------------------------------------------------------------

    async def list(self, principal: Principal) -> builtins.list[dict[str, Any]]:
        """Every prompt: its newest version, labels, production version and variables (a JSON schema)."""
        items = await self.registry.prompts()
        out = []
        for item in items:
            labels = {r["label"]: {"version": r["version"], "weight": r["weight"]} for r in item["labels"]}
            production = labels.get(PRODUCTION, {}).get("version")
            shown = production or item["latest_version"]
            out.append(
                {
                    **{k: v for k, v in item.items() if k not in ("labels", "updated_at")},
                    "updated_at": utc_iso(item["updated_at"]),
                    "labels": labels,
                    "production_version": production,
                    "variables": (await self.registry.get(item["name"], int(shown))).spec.variables,
                }
            )
        return out

    async def show(self, principal: Principal, name: str) -> dict[str, Any]:
        rows = await self.registry.versions(check_name(name))
        latest = await self.registry.get(name, int(rows[-1]["version"]))
        return {
            "name": name,
            "description": latest.spec.description,
            "latest_version": latest.version,
            "versions": [row_version_view(r) for r in rows],
            "labels": [label_view(r) for r in await self.registry.labels(name)],
        }

    async def version(self, principal: Principal, name: str, version: int) -> dict[str, Any]:
        found = await self.registry.get(check_name(name), check_int(version, "version", 1, INT32_MAX))
        return version_view(found, full=True)

    async def diff(
        self, principal: Principal, name: str, old: int | None = None, new: int | None = None
    ) -> dict[str, Any]:
        """A unified diff of two versions' YAML; by default the newest against the one before."""
        rows = await self.registry.versions(check_name(name))
        new = check_int(new, "to", 1, 10**9) if new is not None else int(rows[-1]["version"])
        old = check_int(old, "from", 1, 10**9) if old is not None else max(1, new - 1)
        text = await self.registry.diff(name, old, new)
        return {"name": name, "from": old, "to": new, "diff": text}

    async def render(
        self,
        principal: Principal,
        name: str,
        variables: dict[str, Any],
        version: int | None = None,
        label: str | None = None,
    ) -> dict[str, Any]:
        """The messages (and response format) a chat call with this prompt would send; no model is called."""
        spec = parse(RenderSpec, {"version": version, "label": label, "variables": variables})
        if spec.version is not None and spec.label is not None:
            raise InvalidRequest("give version or label, not both", param="label")
        ref = PromptRef(name=check_name(name), version=spec.version, label=spec.label, variables=spec.variables)
        call = await prepare(self.registry, ref, prefix="")
        return {
            "name": call.name,
            "version": call.version,
            "tier": call.tier or "auto",
            "messages": call.messages,
            "response_format": call.response_format(),
        }

    async def stats(
        self,
        principal: Principal,
        name: str,
        project: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> dict[str, Any]:
        """Per version: requests, errors, schema failures, latency, cost and acceptance in ``[start, end)``."""
        check_name(name)
        if project is not None:
            await self._identity.visible_project(principal, project)
        elif not principal.root:
            project = principal.project_id
        end = end or self._clock.now()
        start = start or end - DEFAULT_WINDOW
        if start >= end:
            raise InvalidRequest("query parameter 'to' must be after 'from' ('to' is exclusive)", param="to")
        rows = await self.registry.versions(name)
        labels: dict[int, builtins.list[str]] = {}
        for label in await self.registry.labels(name):
            labels.setdefault(int(label["version"]), []).append(str(label["label"]))
        found = await version_stats(self._usage_db, name, start, end, project)
        if self._acceptance is not None:
            for version, (accepted, reviewed) in (await self._acceptance(name, start, end, project)).items():
                entry = found.setdefault(version, VersionStats())
                entry.accepted, entry.reviewed = accepted, reviewed
        return {
            "name": name,
            "from": utc_iso(start),
            "to": utc_iso(end),
            "project": project,
            "versions": [
                {
                    "version": r["version"],
                    "labels": labels.get(int(r["version"]), []),
                    **found.get(int(r["version"]), VersionStats()).view(),
                }
                for r in rows
            ],
        }

    # --- changing (server admin key) -----------------------------------------

    async def publish(
        self, principal: Principal, draft: Draft, request_id: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        """A new immutable version (or the same content's existing one, and False); a new prompt goes live."""
        principal.require_root()
        version, created = await self.registry.publish(draft, source="api", created_by=principal.key_id)
        if created:
            await self._audit(
                principal, "prompt.publish", version.tag, {"content_hash": version.content_hash}, request_id
            )
            # A new prompt is usable at once: its first version becomes production (later ones wait for a move).
            move = await self.registry.ensure_production(version.name, version.version, by=principal.key_id)
            if move is not None:
                await self._audit(principal, "prompt.label", version.name, move.detail(), request_id)
        return {**version_view(version), "created": created}, created

    async def refuse_change(self, principal: Principal, name: str, version: int) -> NoReturn:
        """Published versions never change: 409 (after the checks any change would pass first)."""
        principal.require_root()
        found = await self.registry.get(check_name(name), check_int(version, "version", 1, INT32_MAX))
        raise Conflict(
            f"prompt {found.tag} is published and cannot change, so that usage and results stay comparable; "
            f"publish a new version (POST /api/prompts) and move a label to it",
            code="version_immutable",
        )

    async def set_label(
        self,
        principal: Principal,
        name: str,
        label: str,
        version: int,
        weight: float | None = None,
        pinned: bool = True,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Point ``label`` at ``version`` (``weight``: a canary's share of production calls)."""
        principal.require_root()
        name, label = check_name(name), _label(label)
        spec = parse(LabelSpec, {"version": version, "weight": weight, "pinned": pinned})
        move = await self.registry.set_label(
            name, label, spec.version, weight=spec.weight, pinned=spec.pinned, by=principal.key_id
        )
        view = await self._move_view(move)
        await self._audit(principal, "prompt.label", name, {**move.detail(), "weight": spec.weight}, request_id)
        return view

    async def delete_label(
        self, principal: Principal, name: str, label: str, request_id: str | None = None
    ) -> dict[str, Any]:
        principal.require_root()
        name, label = check_name(name), _label(label)
        row = await self.registry.delete_label(name, label)
        await self._audit(
            principal, "prompt.label.delete", name, {"label": label, "version": row["version"]}, request_id
        )
        return label_view(row)

    async def rollback(
        self,
        principal: Principal,
        name: str,
        label: str = PRODUCTION,
        version: int | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Move ``label`` back (to where it pointed before, or to ``version``)."""
        principal.require_root()
        name = check_name(name)
        spec = parse(RollbackSpec, {"label": label, "version": version})
        _label(spec.label)
        move = await self.registry.rollback(name, spec.label, spec.version, by=principal.key_id)
        view = await self._move_view(move)
        await self._audit(principal, "prompt.rollback", name, move.detail(), request_id)
        return view

    async def _move_view(self, move: Move) -> dict[str, Any]:
        labels = {r["label"]: r for r in await self.registry.labels(move.name)}
        current = labels.get(move.label)
        return {
            "name": move.name,
            "label": move.label,
            "from_version": move.from_version,
            "to_version": move.to_version,
            "state": label_view(current) if current is not None else None,
        }

    async def _audit(
        self, principal: Principal, action: str, target: str, detail: dict[str, Any], request_id: str | None
    ) -> None:
        await self._identity.audit.record(
            principal, action, project_id=None, target=target, detail=detail, request_id=request_id
        )
