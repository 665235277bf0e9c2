"""Authentication happens once, in middleware, before any route or mounted app of a protected path runs.

The app here is the middleware in front of a REST route, a mounted ASGI app
(as ``/mcp`` is) and a WebSocket, with real keys in a SQLite database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from core.clock import SystemClock
from core.db import create_engine, migrate
from core.errors import Forbidden, Unauthorized
from core.http import exception_handlers
from core.identity.keys import KeyStore
from core.identity.middleware import Authenticate, AuthenticationMiddleware, principal_of
from core.identity.principal import Principal
from core.identity.projects import ProjectStore

ADMIN_KEY = "sk-aitp-test-admin-Xq8v2LrT0pWm5Zc7Nb3Hd6Jf"


class Reached:
    """What ran behind the middleware, and as whom."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Principal]] = []


def build_app(authenticate: Authenticate, reached: Reached) -> Starlette:
    async def thing(request: Request) -> Response:
        reached.calls.append(("route", principal_of(request)))
        return JSONResponse({"project": principal_of(request).project_id})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def mounted(scope: Scope, receive: Receive, send: Send) -> None:
        reached.calls.append(("mounted", principal_of(scope)))
        await JSONResponse({"mounted": True})(scope, receive, send)

    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"project": principal_of(websocket).project_id})
        await websocket.close()

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/api/thing", thing),
            Route("/v1/models", thing),
            Mount("/mcp", app=mounted),
            WebSocketRoute("/api/ws", socket),
        ],
        middleware=[Middleware(AuthenticationMiddleware, authenticate=authenticate)],
        exception_handlers=exception_handlers(),
    )


@pytest.fixture(scope="module")
async def keys(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[KeyStore]:
    path: Path = tmp_path_factory.mktemp("auth") / "aitp.db"
    db = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(db)
    clock = SystemClock()
    await ProjectStore(db, clock).create("team-a", "")
    yield KeyStore(db, ADMIN_KEY, clock)
    await db.dispose()


async def new_key(keys: KeyStore, role: str = "member") -> tuple[str, str]:
    created = await keys.create(
        project_id="team-a",
        name="k",
        role=role,  # type: ignore[arg-type]
        allowed_models=None,
        expires_at=None,
        rpm=None,
        tpm=None,
        created_by="test",
    )
    return created.spec.id, created.secret


def client(app: Starlette, key: str | None = None) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers)


@pytest.mark.parametrize("path", ["/api/thing", "/v1/models", "/mcp", "/mcp/", "/api/nowhere"])
async def test_no_key_and_a_bad_key_are_401_before_anything_runs(keys: KeyStore, path: str) -> None:
    reached = Reached()
    app = build_app(keys.authenticate, reached)
    async with client(app) as http:
        missing = await http.post(path, json={})
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "missing_api_key"
    assert missing.json()["error"]["type"] == "authentication_error"
    assert missing.headers["www-authenticate"] == "Bearer"
    async with client(app, "sk-aitp-not-a-real-key") as http:
        bad = await http.get(path)
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"
    assert reached.calls == []


async def test_a_revoked_key_is_refused_before_the_route_and_the_mounted_app(keys: KeyStore) -> None:
    reached = Reached()
    app = build_app(keys.authenticate, reached)
    key_id, secret = await new_key(keys)
    async with client(app, secret) as http:
        assert (await http.get("/api/thing")).json() == {"project": "team-a"}
        assert (await http.post("/mcp/", json={})).json() == {"mounted": True}
        assert [(where, p.key_id) for where, p in reached.calls] == [("route", key_id), ("mounted", key_id)]
        await keys.revoke(key_id, "leaked")
        reached.calls.clear()
        for path in ("/api/thing", "/mcp/"):
            refused = await http.post(path, json={})
            assert refused.status_code == 401, path
            assert refused.json()["error"]["code"] == "key_revoked"
            assert "leaked" in refused.json()["error"]["message"]
    assert reached.calls == []


async def test_public_paths_need_no_key(keys: KeyStore) -> None:
    async with client(build_app(keys.authenticate, Reached())) as http:
        assert (await http.get("/healthz")).status_code == 200


async def test_the_server_admin_key_is_root(keys: KeyStore) -> None:
    reached = Reached()
    async with client(build_app(keys.authenticate, reached), ADMIN_KEY) as http:
        assert (await http.get("/api/thing")).status_code == 200
    principal = reached.calls[0][1]
    assert principal.root and principal.scope() is None


def test_websockets_take_the_key_as_a_header_or_token_and_close_1008_without_one() -> None:
    known = Principal(key_id="k1", project_id="team-ws", role="viewer")

    async def authenticate(header: str | None) -> Principal:
        if header is None:
            raise Unauthorized("missing API key", code="missing_api_key")
        if header != "Bearer sk-aitp-ws":
            raise Unauthorized("invalid API key")
        return known

    with TestClient(build_app(authenticate, Reached())) as http:
        with http.websocket_connect("/api/ws?token=sk-aitp-ws") as ws:
            assert ws.receive_json() == {"project": "team-ws"}
        with http.websocket_connect("/api/ws", headers={"authorization": "Bearer sk-aitp-ws"}) as ws:
            assert ws.receive_json() == {"project": "team-ws"}
        with pytest.raises(WebSocketDisconnect) as refused, http.websocket_connect("/api/ws"):
            pass
        assert refused.value.code == 1008 and refused.value.reason.startswith("missing_api_key: ")


def test_principal_of_a_request_outside_authentication_fails_closed() -> None:
    with pytest.raises(RuntimeError, match="not behind authentication"):
        principal_of({"type": "http", "path": "/elsewhere"})


def test_scope_is_the_project_or_every_project_for_root() -> None:
    assert Principal(key_id="k", project_id="p", role="admin").scope() == "p"
    assert Principal(key_id="admin-env", project_id="default", role="admin", root=True).scope() is None


@pytest.mark.parametrize(
    ("role", "minimum", "allowed"),
    [
        ("viewer", "viewer", True),
        ("viewer", "member", False),
        ("member", "member", True),
        ("member", "admin", False),
        ("admin", "member", True),
        ("admin", "admin", True),
    ],
)
def test_require_role_ranks_viewer_member_admin(role: str, minimum: str, allowed: bool) -> None:
    principal = Principal(key_id="k", project_id="p", role=role)  # type: ignore[arg-type]
    if allowed:
        principal.require_role(minimum)  # type: ignore[arg-type]
        return
    with pytest.raises(Forbidden) as refused:
        principal.require_role(minimum, "it can read tasks but not submit them")  # type: ignore[arg-type]
    assert refused.value.code == "role_forbidden"
    use = "an admin key" if minimum == "admin" else "a member or admin key"
    assert refused.value.message == f"this key has the {role} role: it can read tasks but not submit them; use {use}"


def test_the_server_admin_key_passes_every_role_check() -> None:
    Principal(key_id="admin-env", project_id="default", role="viewer", root=True).require_role("admin")
