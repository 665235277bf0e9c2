"""REST for the caller (``/api/me``) and, for admins, projects, keys and the audit log (``/api/projects`` …)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.clock import Clock
from core.errors import InvalidRequest, NotFound
from core.http import JSONResponse, read_json, request_id
from core.timefmt import utc_iso
from core.validation import Int32, Text, parse, query_int

from .audit import AuditLog
from .keys import KeyStore, key_view
from .middleware import principal_of
from .principal import Principal, Role
from .projects import ProjectStore, project_view

SLUG = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class ProjectSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=SLUG, description="lower-case letters, digits, '-' and '_'; becomes the project id")
    description: Annotated[str, Text(1000)] = ""


class KeySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: Annotated[str, Text(64, 1)] | None = Field(default=None, description="default: the caller's project")
    name: Annotated[str, Text(128, 1)]
    role: Role = "member"
    allowed_models: list[Annotated[str, Text(256, 1)]] | None = Field(default=None, max_length=100)
    expires_at: datetime | None = None
    expires_in_s: float | None = Field(default=None, gt=0, le=10 * 365 * 86400)
    rpm: Int32 | None = Field(default=None, gt=0)
    tpm: Int32 | None = Field(default=None, gt=0)

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        # The handler's clock comes in the validation context: parse(KeySpec, body, {"now": ...}).
        now: datetime = (info.context or {})["now"]
        if value <= now:
            raise ValueError("expires_at must be in the future")
        return value


class RevokeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Text(500)] = "revoked by an admin"


@dataclass(slots=True)
class Identity:
    keys: KeyStore
    projects: ProjectStore
    audit: AuditLog
    clock: Clock

    async def visible_project(self, principal: Principal, project_id: str) -> None:
        """404 for a project the caller may not see, exactly as for one that does not exist."""
        if not principal.can_read(project_id):
            raise NotFound(f"no project '{project_id}'; GET /api/projects lists them", code="project_not_found")
        await self.projects.get(project_id)

    def me(self, principal: Principal) -> dict[str, Any]:
        """Who the caller is: key, project, role, limits; what it may do follows from the role."""
        return {
            "key_id": principal.key_id,
            "project": principal.project_id,
            "role": principal.role,
            "root": principal.root,
            "allowed_models": sorted(principal.allowed_models) if principal.allowed_models is not None else None,
            "rpm": principal.rpm,
            "tpm": principal.tpm,
            "expires_at": utc_iso(principal.expires_at),
        }


def identity_routes(identity: Identity) -> list[Route]:
    async def me(request: Request) -> Response:
        return JSONResponse(identity.me(principal_of(request)))

    async def create_project(request: Request) -> Response:
        principal = principal_of(request)
        principal.require_root()
        spec = parse(ProjectSpec, await read_json(request))
        row = await identity.projects.create(spec.name, spec.description)
        await identity.audit.record(
            principal, "project.create", project_id=row.id, target=row.id, request_id=request_id(request)
        )
        return JSONResponse(project_view(row), status_code=201)

    async def list_projects(request: Request) -> Response:
        principal = principal_of(request)
        rows = await identity.projects.find(principal.scope())
        return JSONResponse({"items": [project_view(r) for r in rows]})

    async def create_key(request: Request) -> Response:
        principal = principal_of(request)
        now = identity.clock.now()
        spec = parse(KeySpec, await read_json(request), {"now": now})
        project = spec.project or principal.project_id
        principal.require_admin(project)
        await identity.visible_project(principal, project)
        if spec.expires_at and spec.expires_in_s:
            raise InvalidRequest("give expires_at or expires_in_s, not both", param="expires_in_s")
        expires = spec.expires_at or (now + timedelta(seconds=spec.expires_in_s) if spec.expires_in_s else None)
        new = await identity.keys.create(
            project_id=project,
            name=spec.name,
            role=spec.role,
            allowed_models=spec.allowed_models,
            expires_at=expires,
            rpm=spec.rpm,
            tpm=spec.tpm,
            created_by=principal.key_id,
        )
        view = key_view(new.spec, now)
        await identity.audit.record(
            principal,
            "key.create",
            project_id=project,
            target=new.spec.id,
            detail={k: view[k] for k in ("name", "role", "allowed_models", "expires_at", "rpm", "tpm")},
            request_id=request_id(request),
        )
        # The secret is shown once, here; only its hash is stored.
        return JSONResponse({**view, "key": new.secret}, status_code=201)

    async def list_keys(request: Request) -> Response:
        principal = principal_of(request)
        project = request.query_params.get("project") or principal.scope()
        if project is not None:
            principal.require_admin(project)
            await identity.visible_project(principal, project)
        rows = await identity.keys.find(project)
        now = identity.clock.now()
        return JSONResponse({"items": [key_view(r, now) for r in rows]})

    async def revoke_key(request: Request) -> Response:
        principal = principal_of(request)
        key_id = request.path_params["key_id"]
        body = await request.body()
        spec = parse(RevokeSpec, await read_json(request)) if body.strip() else RevokeSpec()
        row = await identity.keys.get(key_id)
        if not principal.can_read(row.project_id):
            raise NotFound(f"no key '{key_id}'; GET /api/keys lists them", code="key_not_found")
        principal.require_admin(row.project_id)
        row = await identity.keys.revoke(key_id, spec.reason)
        await identity.audit.record(
            principal,
            "key.revoke",
            project_id=row.project_id,
            target=key_id,
            detail={"reason": spec.reason},
            request_id=request_id(request),
        )
        return JSONResponse(key_view(row, identity.clock.now()))

    async def audit(request: Request) -> Response:
        principal = principal_of(request)
        project = request.query_params.get("project") or principal.scope()
        if project is not None:
            principal.require_admin(project)
        limit = query_int(request.query_params, "limit", 100, 1, 1000)
        offset = query_int(request.query_params, "offset", 0, 0, 10**9)
        items = await identity.audit.find(project, limit, offset)
        return JSONResponse({"items": items, "limit": limit, "offset": offset})

    return [
        Route("/api/me", me, methods=["GET"]),
        Route("/api/projects", create_project, methods=["POST"]),
        Route("/api/projects", list_projects, methods=["GET"]),
        Route("/api/keys", create_key, methods=["POST"]),
        Route("/api/keys", list_keys, methods=["GET"]),
        Route("/api/keys/{key_id}", revoke_key, methods=["DELETE"]),
        Route("/api/audit", audit, methods=["GET"]),
    ]
