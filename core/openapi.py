"""OpenAPI 3.1 from the pydantic models that validate the requests: nothing about a body is written twice.

Each route is described once by an :class:`Endpoint`: its method and path, a
summary, and the models the handler parses (``body``) or answers with
(``response``); query parameters, which handlers read one by one, are listed
as :class:`Param`. :func:`build_spec` turns the list into the document,
putting every model's JSON schema (``model_json_schema`` of each, jointly, so
shared sub-models appear once) under ``components.schemas``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema

REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


class ErrorDetail(BaseModel):
    """What :meth:`core.errors.APIError.body` answers (OpenAI's error shape)."""

    model_config = ConfigDict(extra="allow")

    message: str = Field(description="the cause and, where there is one, the fix")
    type: str = Field(description="e.g. invalid_request_error, authentication_error, rate_limit_error")
    code: str | None = Field(description="machine-readable, e.g. invalid_request, not_found, budget_exceeded")
    param: str | None = Field(description="the request field at fault, e.g. input.document_id")


class ErrorResponse(BaseModel):
    error: ErrorDetail


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter (``where="query"``) or header the handler reads itself."""

    name: str
    type: Literal["string", "integer", "number", "boolean"] = "string"
    description: str = ""
    required: bool = False
    where: Literal["query", "header"] = "query"
    enum: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    query: tuple[Param, ...] = ()
    status: int = 200
    description: str = ""
    # Other bodies than the model's JSON (uploads, YAML) and answers that are not JSON (SSE, files).
    body_types: dict[str, dict[str, Any]] = field(default_factory=dict)
    response_type: str = "application/json"
    public: bool = False  # served without a key


Refs = dict[tuple[Any, str], Any]  # (model, mode) -> {"$ref": ...}


def _schema_refs(endpoints: Sequence[Endpoint]) -> tuple[Refs, dict[str, Any]]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorResponse, "serialization")]
    for endpoint in endpoints:
        if endpoint.body is not None:
            wanted.append((endpoint.body, "validation"))
        if endpoint.response is not None:
            wanted.append((endpoint.response, "serialization"))
    refs, defs = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF)
    found: Refs = {key: ref for key, ref in refs.items()}
    return found, defs.get("$defs", {})


def _operation(endpoint: Endpoint, refs: Refs) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(endpoint.path)
    ]
    for p in endpoint.query:
        schema: dict[str, Any] = {"type": p.type}
        if p.enum:
            schema["enum"] = list(p.enum)
        params.append(
            {"name": p.name, "in": p.where, "required": p.required, "description": p.description, "schema": schema}
        )
    op: dict[str, Any] = {
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
        "operationId": f"{endpoint.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', endpoint.path.lower()).strip('_')}",
    }
    if endpoint.description:
        op["description"] = endpoint.description
    if params:
        op["parameters"] = params
    content: dict[str, Any] = {}
    if endpoint.body is not None:
        content["application/json"] = {"schema": refs[(endpoint.body, "validation")]}
    content.update({media: {"schema": schema} for media, schema in endpoint.body_types.items()})
    if content:
        op["requestBody"] = {"required": True, "content": content}
    answer: dict[str, Any] = {"description": "OK"}
    if endpoint.response is not None:
        answer["content"] = {endpoint.response_type: {"schema": refs[(endpoint.response, "serialization")]}}
    else:
        answer["content"] = {endpoint.response_type: {"schema": {}}}
    error = {
        "description": "an error naming its cause and fix",
        "content": {"application/json": {"schema": refs[(ErrorResponse, "serialization")]}},
    }
    op["responses"] = {str(endpoint.status): answer, "4XX": error, "5XX": error}
    if not endpoint.public:
        op["security"] = [{"bearer": []}]
    return op


def build_spec(endpoints: Sequence[Endpoint], title: str, version: str, description: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``endpoints``; a method and path described twice is a programming error."""
    refs, schemas = _schema_refs(endpoints)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        path = _PATH_PARAM.sub(r"{\1}", endpoint.path)
        operations = paths.setdefault(path, {})
        method = endpoint.method.lower()
        if method in operations:
            raise ValueError(f"{endpoint.method} {endpoint.path} is described twice")
        operations[method] = _operation(endpoint, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an aitp key: sk-aitp-…"}
            },
        },
    }
