"""``aitp serve`` exactly as shipped, plus test-only routes that fail on purpose.

Run as ``python -m tests.core.serve_with_faults serve …``. The routes exist to
observe what no real request should reach any more: an unexpected exception,
and an insert the database refuses.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import aitp.app
from aitp.cli import main
from core.db import create_engine, session_factory
from core.identity.tables import ApiKeyRow
from core.settings import Settings
from core.tracing import Tracing

BOOM = "boom-marker-7f3a"
KEY_HASH = "f" * 8 + secrets.token_hex(28)  # looks like a stored key hash; must never reach a log


def fault_routes(settings: Settings) -> list[Route]:
    async def peer(request: Request) -> Response:
        client = request.client
        return JSONResponse({"port": client.port if client else None})

    async def boom(request: Request) -> Response:
        raise RuntimeError(BOOM)

    async def boom_stream(request: Request) -> Response:
        async def body() -> Any:
            yield b"first part\n"
            raise RuntimeError(BOOM + "-stream")

        return StreamingResponse(body(), media_type="text/plain")

    async def duplicate_key(request: Request) -> Response:
        engine = create_engine(settings.effective_database_url)
        try:
            sessions = session_factory(engine)
            for _ in range(2):
                row = ApiKeyRow(
                    id="key_" + secrets.token_hex(8),
                    project_id="default",
                    name="dup",
                    prefix="sk-aitp-dup",
                    key_hash=KEY_HASH,
                    role="member",
                    created_at=datetime.now(UTC),
                )
                async with sessions.begin() as session:
                    session.add(row)
        finally:
            await engine.dispose()
        return JSONResponse({"inserted": "twice?"})

    async def key_hash(request: Request) -> Response:
        return JSONResponse({"hash": KEY_HASH})

    return [
        Route("/test/peer", peer),
        Route("/test/boom", boom),
        Route("/test/boom-stream", boom_stream),
        Route("/test/duplicate-key", duplicate_key, methods=["POST"]),
        Route("/test/key-hash", key_hash),
    ]


def _with_faults(settings: Settings, *, tracing: Tracing | None = None) -> Starlette:
    app = _create_app(settings, tracing=tracing)
    app.router.routes[0:0] = fault_routes(settings)
    return app


_create_app = aitp.app.create_app

if __name__ == "__main__":
    aitp.app.create_app = _with_faults  # cmd_serve imports create_app when it runs
    raise SystemExit(main())
