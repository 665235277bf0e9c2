"""Request bodies validated with pydantic; failures become a 400 naming each bad field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)


def _field_name(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def invalid_from(error: ValidationError) -> InvalidRequest:
    """Turn a pydantic error into a 400 naming every bad field (the first is ``param``)."""
    problems = []
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p in {"str", "list[dict[str,any]]"}))
        problems.append((_field_name(loc) or "(body)", item["msg"], item["type"]))
    first = problems[0][0]
    detail = "; ".join(
        f"'{name}' is required" if kind == "missing" else f"'{name}': {msg}" for name, msg, kind in problems
    )
    return InvalidRequest(f"invalid request body: {detail}", param=first)


def parse(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object", param=None)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_from(exc) from None


def query_int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"query parameter '{name}' must be a whole number, got {raw!r}", param=name) from None
    if not low <= value <= high:
        raise InvalidRequest(f"query parameter '{name}' must be between {low} and {high}, got {value}", param=name)
    return value
