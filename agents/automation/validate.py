"""The validator of an automation body: JSON parsing, the prompt's response schema, and what it cannot say.

One validator serves the model's answer (steps 6 and 7 of ``automation.generate``) and a reviewer's
``corrected_body`` (checked at the API before the review is recorded). Every error starts with the
JSON path it is about (``steps[2].locator: ...``; ``$`` is the whole body), so ``testcase.repair`` and
a reviewer are told exactly what to fix.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError

from agents.answers import extract_json

Target = Literal["browser", "api"]

# Browser actions and what each needs besides a description.
NEEDS_LOCATOR = frozenset(
    {"click", "fill", "select", "check", "uncheck", "hover", "upload", "expect_visible", "expect_hidden"}
    | {"expect_text", "expect_value"}
)
NEEDS_VALUE = frozenset({"fill", "select", "press", "upload", "expect_text", "expect_value", "expect_title"})
TIERS = {"testid": "gold", "role": "silver", "label": "silver", "text": "silver", "placeholder": "silver"}
TIERS |= {"css": "bronze", "xpath": "bronze"}

_POSITIONAL = re.compile(r":nth-(?:child|of-type)|:first-child|:last-child|\[\d+\]|:eq\(")
_ABSOLUTE = re.compile(r"^https?://[^/\s]+", re.IGNORECASE)
_REFERENCE = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")

# What makes a case an API test rather than a browser test (input.target unset).
_API_HINTS = (
    re.compile(r"\b(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\s+/"),
    re.compile(r"\b(?:GET|POST|PUT|PATCH|DELETE)\b.{0,40}\b(?:request|endpoint|api)\b", re.IGNORECASE),
    re.compile(r"(?<![\w.])/(?:api|v\d+)/", re.IGNORECASE),
    re.compile(r"\b(?:endpoint|REST|HTTP|JSON response|status code|response body|request body)\b", re.IGNORECASE),
    re.compile(r"\bAPI\b"),
    re.compile(r"(?:HTTP|status|返回|状态码|响应码)\s*[:：]?\s*[1-5]\d\d\b", re.IGNORECASE),
    re.compile(r"\b[1-5]\d\d\s+(?:OK|Created|No Content|Bad Request|Unauthorized|Forbidden|Not Found|Conflict)\b"),
    re.compile(r"接口|状态码|响应体|请求体|请求参数|响应码"),
)


def infer_target(case: dict[str, Any]) -> tuple[Target, str]:
    """``api`` when the case speaks of HTTP methods, endpoints, status codes or 接口; else ``browser``."""
    text = json.dumps(case, ensure_ascii=False)
    for pattern in _API_HINTS:
        found = pattern.search(text)
        if found:
            return "api", f"the case mentions {found.group(0).strip()!r}"
    return "browser", "the case names no HTTP method, endpoint, status code or 接口"


def validate_body(body: Any, schema: dict[str, Any], target: Target) -> dict[str, Any]:
    """The validation result ``{valid, errors, warnings, locator_tiers}`` of a parsed body."""
    tiers = {"gold": 0, "silver": 0, "bronze": 0}
    if not isinstance(body, dict):
        kind = "array" if isinstance(body, list) else type(body).__name__
        error = f"$: expected a JSON object with kind, name and {'steps' if target == 'browser' else 'requests'}"
        return _result([f"{error}, got {kind}"], [], tiers)
    errors = schema_errors(body, schema)
    warnings: list[str] = []
    if body.get("kind") != target:
        errors.append(f"kind: must be {target!r} (the chosen target), got {body.get('kind')!r}")
    elif target == "browser":
        _check_browser(body, errors, warnings, tiers)
    else:
        _check_api(body, errors, warnings)
    return _result(errors, warnings, tiers)


def check_text(raw: Any, schema: dict[str, Any], target: Target) -> tuple[Any, dict[str, Any]]:
    """Parse (when a string) and validate: ``(body or None, validation result)``."""
    body, error = extract_json(raw)
    if error is not None:
        return None, _result([error], [], {"gold": 0, "silver": 0, "bronze": 0})
    return body, validate_body(body, schema, target)


def schema_errors(body: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Errors against the schema; for a ``oneOf`` on ``kind``, against the branch the body's kind names."""
    branch = _branch(schema, body.get("kind"))
    validator = Draft202012Validator(branch)
    found = sorted(validator.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
    return [_format(error) for error in found[:50]]


def _branch(schema: dict[str, Any], kind: Any) -> dict[str, Any]:
    for option in schema.get("oneOf") or []:
        const = ((option.get("properties") or {}).get("kind") or {}).get("const")
        if const is not None and const == kind:
            merged = {k: v for k, v in schema.items() if k != "oneOf"}
            merged["properties"] = {**(schema.get("properties") or {}), **option.get("properties", {})}
            merged["required"] = sorted({*schema.get("required", []), *option.get("required", [])})
            return merged
    return schema


def _format(error: SchemaError) -> str:
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    message = error.message
    if error.validator == "oneOf" and not path:
        message = "'kind' must be 'browser' (with steps) or 'api' (with requests)"
    if len(message) > 200:
        message = message[:200] + "…"
    return f"{path or '$'}: {message}"


def _check_browser(body: dict[str, Any], errors: list[str], warnings: list[str], tiers: dict[str, int]) -> None:
    steps = body.get("steps")
    if not isinstance(steps, list):
        return
    expects = 0
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        where, action = f"steps[{index}]", step.get("action")
        locator = step.get("locator")
        if isinstance(action, str) and action.startswith("expect_"):
            expects += 1
        if action in NEEDS_LOCATOR and not isinstance(locator, dict):
            errors.append(f"{where}.locator: action {action!r} needs a locator (prefer data-testid, then role/label)")
        if action == "goto" and not str(step.get("url") or "").strip():
            errors.append(f"{where}.url: action 'goto' needs a url (absolute, or a path under base_url)")
        if action == "expect_url" and not str(step.get("value") or step.get("url") or "").strip():
            errors.append(f"{where}.value: action 'expect_url' needs the expected URL (or a part of it) in value")
        if action == "wait_for" and not isinstance(locator, dict) and not step.get("url"):
            errors.append(f"{where}.locator: action 'wait_for' needs a locator or a url to wait for")
        if action in NEEDS_VALUE and "value" not in step:
            errors.append(f"{where}.value: action {action!r} needs a value")
        for key, found in _locators(step):
            tier = TIERS.get(str(found.get("strategy")))
            if key == "locator" and tier is not None:
                tiers[tier] += 1
            if tier == "bronze":
                warnings.append(f"{where}.{key}: {found.get('strategy')} locator (bronze); prefer data-testid or role")
            if tier == "bronze" and _POSITIONAL.search(str(found.get("value", ""))):
                warnings.append(
                    f"{where}.{key}: positional selector {found.get('value')!r} breaks when the page changes"
                )
        if step.get("timeout_ms", 0) and step.get("timeout_ms", 0) > 60_000:
            warnings.append(f"{where}.timeout_ms: waits over 60 s make a failing run slow")
    if steps and expects == 0:
        warnings.append("steps: no expect_* step; the test cannot fail on a wrong result")
    _check_references(body, body.get("data"), warnings)


def _locators(step: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(step.get("locator"), dict):
        out.append(("locator", step["locator"]))
    for i, fallback in enumerate(step.get("fallbacks") or []):
        if isinstance(fallback, dict):
            out.append((f"fallbacks[{i}]", fallback))
    return out


def _check_references(body: dict[str, Any], data: Any, warnings: list[str]) -> None:
    keys = set(data) if isinstance(data, dict) else set()
    for name in sorted(set(_REFERENCE.findall(json.dumps(body.get("steps"), ensure_ascii=False)))):
        if name.startswith("data.") and name.split(".")[1] not in keys:
            warnings.append(f"data: {{{{{name}}}}} is used but data has no key {name.split('.')[1]!r}")


def _check_api(body: dict[str, Any], errors: list[str], warnings: list[str]) -> None:
    requests = body.get("requests")
    if not isinstance(requests, list):
        return
    names: set[str] = set()
    extracted: set[str] = set()
    for index, request in enumerate(requests):
        if not isinstance(request, dict):
            continue
        where = f"requests[{index}]"
        path = request.get("path")
        if isinstance(path, str) and not (path.startswith("/") or _ABSOLUTE.match(path)):
            errors.append(f"{where}.path: {path!r} must start with '/' (under base_url) or be an absolute http(s) URL")
        name = request.get("name")
        if isinstance(name, str):
            if name in names:
                warnings.append(f"{where}.name: {name!r} is used twice; name each request once")
            names.add(name)
        used = set(
            _REFERENCE.findall(json.dumps([path, request.get("headers"), request.get("query"), request.get("json")]))
        )
        for ref in sorted(used - extracted):
            if not ref.startswith(("data.", "run_id", "env.")):
                warnings.append(f"{where}: {{{{{ref}}}}} is used before any request extracts it")
        expect = request.get("expect")
        checks_body = isinstance(expect, dict) and ("json_contains" in expect or "json_schema" in expect)
        if isinstance(expect, dict) and not checks_body and request.get("method") in ("GET", "POST", "PUT", "PATCH"):
            warnings.append(f"{where}.expect: only the status is checked; add json_contains or json_schema")
        if isinstance(request.get("extract"), dict):
            extracted |= set(request["extract"])


def _result(errors: list[str], warnings: list[str], tiers: dict[str, int]) -> dict[str, Any]:
    return {"valid": not errors, "errors": errors, "warnings": warnings, "locator_tiers": tiers}
