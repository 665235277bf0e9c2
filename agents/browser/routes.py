"""Browser REST API: each handler parses the request, calls :class:`BrowserService` and answers.

``POST /api/browser/runs`` (a ``browser.run`` task), ``GET /api/browser/runs/{task_id}`` (results),
``GET /api/tasks/{task_id}/artifacts/{name}`` (screenshots, trace, JUnit XML, downloads),
``POST /api/browser/inspect``, specs under ``/api/browser/specs`` (CRUD, ``/patch``, ``/export``).
"""

from __future__ import annotations

import mimetypes

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from core.http import JSONResponse, read_json
from core.identity.middleware import principal_of
from core.validation import header_text, parse, query_int

from .service import MAX_PAGE, BrowserService, InspectRequest

_MEDIA = {".zip": "application/zip", ".xml": "application/xml", ".png": "image/png", ".json": "application/json"}


def browser_routes(browser: BrowserService) -> list[BaseRoute]:
    async def run(request: Request) -> Response:
        key = header_text(request.headers, "Idempotency-Key", 200)
        task = await browser.run(principal_of(request), await read_json(request), key)
        return JSONResponse(task, status_code=202)

    async def results(request: Request) -> Response:
        return JSONResponse(await browser.results(principal_of(request), request.path_params["task_id"]))

    async def artifact(request: Request) -> Response:
        path = await browser.artifact(
            principal_of(request), request.path_params["task_id"], request.path_params["name"]
        )
        media = _MEDIA.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        # Downloads are served as attachments: a page's file must never render in the platform's origin.
        disposition = "inline" if media in ("image/png", "application/xml", "application/json") else "attachment"
        return FileResponse(
            path,
            media_type=media,
            content_disposition_type=disposition,
            headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"},
        )

    async def inspect(request: Request) -> Response:
        spec = parse(InspectRequest, await read_json(request))
        return JSONResponse(await browser.inspect(principal_of(request), spec.url, spec.max_elements))

    async def list_specs(request: Request) -> Response:
        params = request.query_params
        found = await browser.list_specs(
            principal_of(request),
            limit=query_int(params, "limit", 50, 1, MAX_PAGE),
            offset=query_int(params, "offset", 0, 0, 10**9),
        )
        return JSONResponse(found)

    async def create_spec(request: Request) -> Response:
        return JSONResponse(await browser.create_spec(principal_of(request), await read_json(request)), status_code=201)

    async def get_spec(request: Request) -> Response:
        return JSONResponse(await browser.get_spec(principal_of(request), request.path_params["spec_id"]))

    async def replace_spec(request: Request) -> Response:
        body = await read_json(request)
        return JSONResponse(await browser.replace_spec(principal_of(request), request.path_params["spec_id"], body))

    async def delete_spec(request: Request) -> Response:
        await browser.delete_spec(principal_of(request), request.path_params["spec_id"])
        return Response(status_code=204)

    async def patch_spec(request: Request) -> Response:
        body = await read_json(request)
        return JSONResponse(await browser.patch_spec(principal_of(request), request.path_params["spec_id"], body))

    async def export(request: Request) -> Response:
        fmt = request.query_params.get("format", "pytest")
        text, name = await browser.export(principal_of(request), request.path_params["spec_id"], fmt)
        return Response(
            text,
            media_type="text/x-python; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return [
        Route("/api/browser/runs", run, methods=["POST"]),
        Route("/api/browser/runs/{task_id}", results, methods=["GET"]),
        Route("/api/tasks/{task_id}/artifacts/{name:path}", artifact, methods=["GET"]),
        Route("/api/browser/inspect", inspect, methods=["POST"]),
        Route("/api/browser/specs", list_specs, methods=["GET"]),
        Route("/api/browser/specs", create_spec, methods=["POST"]),
        Route("/api/browser/specs/{spec_id}", get_spec, methods=["GET"]),
        Route("/api/browser/specs/{spec_id}", replace_spec, methods=["PUT"]),
        Route("/api/browser/specs/{spec_id}", delete_spec, methods=["DELETE"]),
        Route("/api/browser/specs/{spec_id}/patch", patch_spec, methods=["POST"]),
        Route("/api/browser/specs/{spec_id}/export", export, methods=["GET"]),
    ]
