"""Input validated at the edge: failures become a 400 naming each bad field, never a database error.

Both databases must refuse the same input the same way, so the limits here
are the strictest of the two: PostgreSQL rejects a NUL character in any text
and integers beyond the column's width, SQLite overflows past 64 bits, and
deeply nested JSON exhausts Python's recursion limit in whatever walks it
next (jsonschema, Jinja2, the upstream call). The reusable pieces:

- ``Annotated[str, Text(128)]``: a string that fits a ``String(128)`` column, without NUL;
- ``Int32`` / ``Int64``: integers that fit ``Integer`` / ``BigInteger`` columns;
- ``Annotated[dict[str, Any], Json(max_depth=32)]``: free-form JSON of bounded depth;
- :func:`parse`: a request body, checked for depth and NUL everywhere before the model sees it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, get_args

from pydantic import BaseModel, Field, GetCoreSchemaHandler, ValidationError
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from .errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Deep enough for any real JSON schema, tool definition or message; shallow enough that every
# recursive walker downstream (orjson allows 255, Python about 1,000 frames) stays far from its limit.
MAX_DEPTH = 64
NUL = "\x00"
# Path parameters are ids and names (at most 128 characters in any column); query values are filters.
MAX_PATH_PARAM_CHARS = 256
MAX_QUERY_VALUE_CHARS = 4096

Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]


class JsonProblem(ValueError):
    """A value nested too deeply, too large, or holding a NUL; ``path`` locates it."""

    def __init__(self, message: str, path: tuple[int | str, ...]) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def check_json(value: Any, *, max_depth: int = MAX_DEPTH, max_nodes: int | None = None) -> None:
    """Refuse JSON nested deeper than ``max_depth``, with more than ``max_nodes`` values, or with a NUL.

    Iterative, so that a hostile depth cannot exhaust the stack of the check itself.
    """
    if not isinstance(value, dict | list):
        if isinstance(value, str) and NUL in value:
            raise JsonProblem("contains a NUL character (\\u0000); remove it", ())
        return
    stack: list[tuple[Any, int, tuple[int | str, ...]]] = [(value, 1, ())]
    nodes = 0
    while stack:
        node, depth, path = stack.pop()
        if depth > max_depth:
            raise JsonProblem(f"nested deeper than {max_depth} levels; flatten it", path)
        items: Any = node.items() if isinstance(node, dict) else enumerate(node)
        for key, item in items:
            nodes += 1
            if max_nodes is not None and nodes > max_nodes:
                raise JsonProblem(f"holds more than {max_nodes} values; send less", ())
            if isinstance(key, str) and NUL in key:
                raise JsonProblem(f"the key {key!r:.60} contains a NUL character (\\u0000); remove it", path)
            if isinstance(item, str):
                if NUL in item:
                    raise JsonProblem("contains a NUL character (\\u0000); remove it", (*path, key))
            elif isinstance(item, dict | list):
                stack.append((item, depth + 1, (*path, key)))


def field_name(loc: tuple[int | str, ...], max_parts: int = 12) -> str:
    out = ""
    for part in loc[:max_parts]:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out + ("…" if len(loc) > max_parts else "")


def _refuse_nul(value: str) -> str:
    if NUL in value:
        raise PydanticCustomError("nul_character", "must not contain a NUL character (\\u0000)")
    return value


@dataclass(frozen=True, slots=True)
class Text:
    """``Annotated[str, Text(max_len)]``: at most ``max_len`` characters (the column's width), no NUL."""

    max_len: int
    min_len: int = 0

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(
            _refuse_nul, core_schema.str_schema(min_length=self.min_len, max_length=self.max_len)
        )


@dataclass(frozen=True, slots=True)
class Json:
    """``Annotated[dict[str, Any], Json(max_depth)]``: free-form JSON of bounded depth and size, no NUL."""

    max_depth: int = MAX_DEPTH
    max_nodes: int | None = None

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        def check(value: Any) -> Any:
            try:
                check_json(value, max_depth=self.max_depth, max_nodes=self.max_nodes)
            except JsonProblem as exc:
                where = field_name(exc.path)
                raise PydanticCustomError(
                    "json_shape",
                    "{where}{problem}",
                    {"where": f"at {where}: " if where else "", "problem": exc.message},
                ) from None
            return value

        # Checked before the inner schema: pydantic's own validation of Any recurses too.
        return core_schema.no_info_before_validator_function(check, handler(source))


def invalid_from(
    error: ValidationError, model: type[BaseModel] | None = None, prefix: str = "", what: str = "request body"
) -> InvalidRequest:
    """Turn a pydantic error into a 400 naming every bad field (the first is ``param``).

    With the ``model`` that refused the data, an unknown field is answered with
    the closest known one ("did you mean 'document_id'?") or the known ones;
    ``prefix`` names where the model's data sits in the body (``input``).
    """
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p in {"str", "list[dict[str,any]]"}))
        message = item["msg"]
        if item["type"] == "extra_forbidden" and model is not None and loc:
            message += _suggestion(model, item["loc"])
        problems.append((field_name((prefix, *loc) if prefix else loc) or "(body)", message, item["type"]))
    first = problems[0][0]
    detail = "; ".join(
        f"'{name}' is required" if kind == "missing" else f"'{name}': {msg}" for name, msg, kind in problems
    )
    return InvalidRequest(f"invalid {what}: {detail}", param=first)


def _suggestion(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """ "; did you mean 'x'?" for an unknown field close to a known one, else the known fields; "" if unknown."""
    known = _known_fields(model, loc[:-1])
    if not known:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    shown = sorted(known)
    return f"; known fields: {', '.join(shown[:30])}{', …' if len(shown) > 30 else ''}"


def _known_fields(model: type[BaseModel], path: tuple[int | str, ...]) -> list[str]:
    """The field names (and aliases) of the model found at ``path`` inside ``model``; [] when it is not a model."""
    candidates = [model]
    for part in path:
        if isinstance(part, int):
            continue
        named = [m for m in candidates if m.__name__ == part]  # a union member's tag
        if named:
            candidates = named
            continue
        field = next((f for m in candidates for n, f in m.model_fields.items() if part in (n, f.alias)), None)
        if field is None:
            return []
        candidates = list(_models_in(field.annotation))
    names: set[str] = set()
    for candidate in candidates:
        for name, field in candidate.model_fields.items():
            names.add(field.alias or name)
    return sorted(names)


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in get_args(annotation):
        yield from _models_in(arg)


def check_body(data: Any, what: str = "request body", max_nodes: int | None = None) -> None:
    """The generic guard every decoded body passes: bounded depth, no NUL in any key or string."""
    try:
        check_json(data, max_nodes=max_nodes)
    except JsonProblem as exc:
        where = field_name(exc.path)
        # A path too long to show in full names its top-level field instead.
        param = field_name(exc.path[:1]) if where.endswith("…") else where
        raise InvalidRequest(f"invalid {what}: '{where or '(body)'}' {exc.message}", param=param or None) from None


def parse(model: type[M], data: Any, context: dict[str, Any] | None = None) -> M:
    """``data`` as ``model``, or a 400 naming the field; ``context`` reaches the model's validators."""
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object", param=None)
    check_body(data)
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise invalid_from(exc, model) from None


def query_int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    return bounded_int(raw, f"query parameter '{name}'", name, low, high)


def bounded_int(raw: str, what: str, param: str, low: int, high: int) -> int:
    """A whole number from a path, query or header value, within ``low``..``high`` (400 otherwise)."""
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{what} must be a whole number, got {raw!r:.80}", param=param) from None
    if not low <= value <= high:
        raise InvalidRequest(f"{what} must be between {low} and {high}, got {value}", param=param)
    return value


def header_text(headers: Mapping[str, str], name: str, max_len: int) -> str | None:
    """A header that is stored (``Idempotency-Key``): at most ``max_len`` characters, no NUL; None when absent."""
    value = headers.get(name)
    if not value:
        return None
    if len(value) > max_len:
        raise InvalidRequest(f"header {name} is {len(value)} characters long; at most {max_len}", param=name)
    if NUL in value:
        raise InvalidRequest(f"header {name} contains a NUL character; remove it", param=name)
    return value


# Service arguments: what the edge checks in a path or query string, checked again for callers with no edge
# (MCP tools, the CLI), so that every interface refuses the same input with the same 400.
def check_int(value: int, param: str, low: int, high: int) -> int:
    """An integer argument within ``low``..``high``; a 400 naming ``param`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequest(
            f"'{param}' must be a whole number between {low} and {high}, got {value!r:.80}", param=param
        )
    return value


def check_text(value: str, param: str, max_len: int = MAX_PATH_PARAM_CHARS) -> str:
    """An id or name argument: a string of at most ``max_len`` characters without NUL; a 400 naming ``param``."""
    if not isinstance(value, str):
        raise InvalidRequest(f"'{param}' must be a string, got {type(value).__name__}", param=param)
    if NUL in value:
        raise InvalidRequest(f"'{param}' contains a NUL character; remove it", param=param)
    if len(value) > max_len:
        raise InvalidRequest(f"'{param}' is {len(value)} characters long; at most {max_len}", param=param)
    return value
