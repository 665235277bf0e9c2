"""REST for the prompt registry (``/api/prompts…``).

Any valid key may list, show, diff, render and read stats; publishing,
moving labels and rolling back need the server admin key, since prompts are
platform-wide. Every change is written to the audit log.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.clock import Clock
from core.errors import InvalidRequest
from core.http import JSONResponse, read_json, request_id
from core.identity.middleware import principal_of
from core.identity.principal import Principal
from core.identity.projects import Conflict
from core.identity.routes import Identity
from core.timefmt import utc_iso
from core.validation import INT32_MAX, Int32, Json, Text, parse, query_int
from gateway.reports import DEFAULT_WINDOW, parse_instant
from gateway.schemas import PromptRef

from .registry import PRODUCTION, Move, PromptRegistry, PromptVersion
from .spec import MAX_NAME_CHARS, Draft, check_label, from_data, from_yaml
from .stats import AcceptanceSource, VersionStats, version_stats
from .use import prepare

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


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


def _int_param(request: Request, name: str) -> int:
    raw = request.path_params[name]
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be a version number such as 3, got {raw!r}", param=name) from None
    if not 1 <= value <= INT32_MAX:
        raise InvalidRequest(f"'{name}' must be between 1 and {INT32_MAX}, got {value}", param=name)
    return value


def _name_param(request: Request) -> str:
    # Longer names cannot exist (the column is String(128)); a 400 says so rather than a failed lookup.
    name: str = request.path_params["name"]
    if len(name) > MAX_NAME_CHARS:
        raise InvalidRequest(
            f"prompt names are at most {MAX_NAME_CHARS} characters; this one has {len(name)}", param="name"
        )
    return name


def _label_param(request: Request) -> str:
    label: str = request.path_params["label"]
    try:
        return check_label(label)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="label") from None


async def _draft(request: Request) -> Draft:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in YAML_TYPES:
        body = await request.body()
        try:
            return from_yaml(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidRequest("the YAML body is not UTF-8 text") from None
    return from_data(await read_json(request))


def prompt_routes(
    identity: Identity,
    registry: PromptRegistry,
    usage_db: AsyncEngine,
    clock: Clock,
    acceptance: AcceptanceSource | None = None,
) -> list[Route]:
    async def admin(request: Request) -> Principal:
        principal = principal_of(request)
        principal.require_root()
        return principal

    async def audit(request: Request, principal: Principal, action: str, target: str, detail: dict[str, Any]) -> None:
        await identity.audit.record(
            principal, action, project_id=None, target=target, detail=detail, request_id=request_id(request)
        )

    async def move_view(move: Move) -> dict[str, Any]:
        labels = {r["label"]: r for r in await registry.labels(move.name)}
        current = labels.get(move.label)
        return {
            "name": move.name,
            "label": move.label,
            "from_version": move.from_version,
            "to_version": move.to_version,
            "state": label_view(current) if current is not None else None,
        }

    async def list_prompts(request: Request) -> Response:
        items = await registry.prompts()
        return JSONResponse(
            {
                "items": [
                    {
                        **{k: v for k, v in item.items() if k not in ("labels", "updated_at")},
                        "updated_at": utc_iso(item["updated_at"]),
                        "labels": {
                            r["label"]: {"version": r["version"], "weight": r["weight"]} for r in item["labels"]
                        },
                    }
                    for item in items
                ]
            }
        )

    async def publish(request: Request) -> Response:
        principal = await admin(request)
        draft = await _draft(request)
        version, created = await registry.publish(draft, source="api", created_by=principal.key_id)
        if created:
            await audit(request, principal, "prompt.publish", version.tag, {"content_hash": version.content_hash})
            # A new prompt is usable at once: its first version becomes production (later ones wait for a move).
            move = await registry.ensure_production(version.name, version.version, by=principal.key_id)
            if move is not None:
                await audit(request, principal, "prompt.label", version.name, move.detail())
        return JSONResponse({**version_view(version), "created": created}, status_code=201 if created else 200)

    async def show(request: Request) -> Response:
        name = _name_param(request)
        rows = await registry.versions(name)
        latest = await registry.get(name, int(rows[-1]["version"]))
        return JSONResponse(
            {
                "name": name,
                "description": latest.spec.description,
                "latest_version": latest.version,
                "versions": [row_version_view(r) for r in rows],
                "labels": [label_view(r) for r in await registry.labels(name)],
            }
        )

    async def show_version(request: Request) -> Response:
        version = await registry.get(_name_param(request), _int_param(request, "version"))
        return JSONResponse(version_view(version, full=True))

    async def change_version(request: Request) -> Response:
        await admin(request)
        version = await registry.get(_name_param(request), _int_param(request, "version"))
        raise Conflict(
            f"prompt {version.tag} is published and cannot change, so that usage and results stay comparable; "
            f"publish a new version (POST /api/prompts) and move a label to it",
            code="version_immutable",
        )

    async def set_label(request: Request) -> Response:
        principal = await admin(request)
        name, label = _name_param(request), _label_param(request)
        spec = parse(LabelSpec, await read_json(request))
        move = await registry.set_label(
            name, label, spec.version, weight=spec.weight, pinned=spec.pinned, by=principal.key_id
        )
        view = await move_view(move)
        await audit(request, principal, "prompt.label", name, {**move.detail(), "weight": spec.weight})
        return JSONResponse(view)

    async def delete_label(request: Request) -> Response:
        principal = await admin(request)
        name, label = _name_param(request), _label_param(request)
        row = await registry.delete_label(name, label)
        await audit(request, principal, "prompt.label.delete", name, {"label": label, "version": row["version"]})
        return JSONResponse(label_view(row))

    async def rollback(request: Request) -> Response:
        principal = await admin(request)
        name = _name_param(request)
        body = await request.body()
        spec = parse(RollbackSpec, await read_json(request)) if body.strip() else RollbackSpec()
        try:
            check_label(spec.label)
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="label") from None
        move = await registry.rollback(name, spec.label, spec.version, by=principal.key_id)
        view = await move_view(move)
        await audit(request, principal, "prompt.rollback", name, move.detail())
        return JSONResponse(view)

    async def diff(request: Request) -> Response:
        name = _name_param(request)
        rows = await registry.versions(name)
        latest = int(rows[-1]["version"])
        new = query_int(request.query_params, "to", latest, 1, 10**9)
        old = query_int(request.query_params, "from", max(1, new - 1), 1, 10**9)
        text = await registry.diff(name, old, new)
        return JSONResponse({"name": name, "from": old, "to": new, "diff": text})

    async def render(request: Request) -> Response:
        name = _name_param(request)
        body = await request.body()
        spec = parse(RenderSpec, await read_json(request)) if body.strip() else RenderSpec()
        if spec.version is not None and spec.label is not None:
            raise InvalidRequest("give version or label, not both", param="label")
        ref = PromptRef(name=name, version=spec.version, label=spec.label, variables=spec.variables)
        call = await prepare(registry, ref, prefix="")
        return JSONResponse(
            {
                "name": call.name,
                "version": call.version,
                "tier": call.tier or "auto",
                "messages": call.messages,
                "response_format": call.response_format(),
            }
        )

    async def stats(request: Request) -> Response:
        principal = principal_of(request)
        name = _name_param(request)
        params = request.query_params
        project = params.get("project") or None
        if project is not None:
            await identity.visible_project(principal, project)
        elif not principal.root:
            project = principal.project_id
        end = parse_instant(params, "to") or clock.now()
        start = parse_instant(params, "from") or end - DEFAULT_WINDOW
        if start >= end:
            raise InvalidRequest("query parameter 'to' must be after 'from' ('to' is exclusive)", param="to")
        rows = await registry.versions(name)
        labels: dict[int, list[str]] = {}
        for label in await registry.labels(name):
            labels.setdefault(int(label["version"]), []).append(str(label["label"]))
        found = await version_stats(usage_db, name, start, end, project)
        if acceptance is not None:
            for version, (accepted, reviewed) in (await acceptance(name, start, end, project)).items():
                entry = found.setdefault(version, VersionStats())
                entry.accepted, entry.reviewed = accepted, reviewed
        return JSONResponse(
            {
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
        )

    return [
        Route("/api/prompts", list_prompts, methods=["GET"]),
        Route("/api/prompts", publish, methods=["POST"]),
        Route("/api/prompts/{name}", show, methods=["GET"]),
        Route("/api/prompts/{name}/versions/{version}", show_version, methods=["GET"]),
        Route("/api/prompts/{name}/versions/{version}", change_version, methods=["PUT", "PATCH", "DELETE"]),
        Route("/api/prompts/{name}/labels/{label}", set_label, methods=["PUT"]),
        Route("/api/prompts/{name}/labels/{label}", delete_label, methods=["DELETE"]),
        Route("/api/prompts/{name}/rollback", rollback, methods=["POST"]),
        Route("/api/prompts/{name}/diff", diff, methods=["GET"]),
        Route("/api/prompts/{name}/render", render, methods=["POST"]),
        Route("/api/prompts/{name}/stats", stats, methods=["GET"]),
    ]
