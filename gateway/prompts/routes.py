"""REST for the prompt registry (``/api/prompts…``): each handler parses, calls :class:`PromptService`, answers.

Any valid key may list, show, diff, render and read stats; publishing,
moving labels and rolling back need the server admin key (the service checks).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.errors import InvalidRequest
from core.http import JSONResponse, read_json, request_id
from core.identity.middleware import principal_of
from core.validation import INT32_MAX, parse, query_int
from gateway.reports import parse_instant

from .service import LabelSpec, PromptService, RenderSpec, RollbackSpec
from .spec import Draft, from_data, from_yaml

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def _int_param(request: Request, name: str) -> int:
    raw = request.path_params[name]
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be a version number such as 3, got {raw!r}", param=name) from None
    if not 1 <= value <= INT32_MAX:
        raise InvalidRequest(f"'{name}' must be between 1 and {INT32_MAX}, got {value}", param=name)
    return value


def _query_version(request: Request, name: str) -> int | None:
    if not request.query_params.get(name):
        return None
    return query_int(request.query_params, name, 0, 1, 10**9)


async def _draft(request: Request) -> Draft:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in YAML_TYPES:
        body = await request.body()
        try:
            return from_yaml(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidRequest("the YAML body is not UTF-8 text") from None
    return from_data(await read_json(request))


def prompt_routes(prompts: PromptService) -> list[Route]:
    async def list_prompts(request: Request) -> Response:
        return JSONResponse({"items": await prompts.list(principal_of(request))})

    async def publish(request: Request) -> Response:
        view, created = await prompts.publish(principal_of(request), await _draft(request), request_id(request))
        return JSONResponse(view, status_code=201 if created else 200)

    async def show(request: Request) -> Response:
        return JSONResponse(await prompts.show(principal_of(request), request.path_params["name"]))

    async def show_version(request: Request) -> Response:
        version = _int_param(request, "version")
        return JSONResponse(await prompts.version(principal_of(request), request.path_params["name"], version))

    async def change_version(request: Request) -> Response:
        await prompts.refuse_change(principal_of(request), request.path_params["name"], _int_param(request, "version"))

    async def set_label(request: Request) -> Response:
        spec = parse(LabelSpec, await read_json(request))
        moved = await prompts.set_label(
            principal_of(request),
            request.path_params["name"],
            request.path_params["label"],
            spec.version,
            weight=spec.weight,
            pinned=spec.pinned,
            request_id=request_id(request),
        )
        return JSONResponse(moved)

    async def delete_label(request: Request) -> Response:
        params = request.path_params
        deleted = await prompts.delete_label(
            principal_of(request), params["name"], params["label"], request_id(request)
        )
        return JSONResponse(deleted)

    async def rollback(request: Request) -> Response:
        body = await request.body()
        spec = parse(RollbackSpec, await read_json(request)) if body.strip() else RollbackSpec()
        moved = await prompts.rollback(
            principal_of(request), request.path_params["name"], spec.label, spec.version, request_id(request)
        )
        return JSONResponse(moved)

    async def diff(request: Request) -> Response:
        old, new = _query_version(request, "from"), _query_version(request, "to")
        return JSONResponse(await prompts.diff(principal_of(request), request.path_params["name"], old, new))

    async def render(request: Request) -> Response:
        body = await request.body()
        spec = parse(RenderSpec, await read_json(request)) if body.strip() else RenderSpec()
        rendered = await prompts.render(
            principal_of(request), request.path_params["name"], spec.variables, spec.version, spec.label
        )
        return JSONResponse(rendered)

    async def stats(request: Request) -> Response:
        params = request.query_params
        found = await prompts.stats(
            principal_of(request),
            request.path_params["name"],
            project=params.get("project") or None,
            start=parse_instant(params, "from"),
            end=parse_instant(params, "to"),
        )
        return JSONResponse(found)

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
