"""JSON Schema validation whose regular expressions run on RE2, in time linear in the input.

jsonschema checks ``pattern`` and ``patternProperties`` with Python's ``re``,
which backtracks: a schema that says ``^(a+)+$`` takes exponential time on a
short string, holding the GIL (so a worker thread does not help). Schemas
come from API callers (prompt variables, response formats), so every
pattern goes through RE2 instead, which has no backtracking. RE2 also
refuses what it cannot run in linear time (look-around, back-references):
:func:`check_schema` turns that into a schema error at publish, naming the
pattern.

``uniqueItems`` is checked in linear time too (jsonschema compares objects
pairwise), and :func:`validator` can call a hook before every keyword, so
that a caller with a deadline can stop a schema whose ``$ref``s make the
work grow exponentially with the instance's depth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jsonschema
import orjson
import re2
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema.protocols import Validator


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern on stderr
    return options


def search(pattern: str, text: str) -> bool:
    """``re.search`` semantics on RE2 (compiled patterns are cached by the re2 module)."""
    return re2.compile(pattern, _options()).search(text) is not None


def pattern_problem(pattern: str) -> str | None:
    """Why RE2 cannot run ``pattern``, or None when it can."""
    try:
        re2.compile(pattern, _options())
    except re2.error as exc:
        detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        return f"{detail} (patterns run on RE2: no look-around or back-references)"
    return None


def _pattern(validator: Validator, pattern: str, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not search(pattern, instance):
        yield ValidationError(f"{instance!r:.200} does not match {pattern!r}")


def _pattern_properties(
    validator: Validator, patterns: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for name, value in instance.items():
            if search(pattern, name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


def _canonical(value: Any) -> Any:
    """A JSON value in a form where equal values (in JSON Schema's sense: 1 == 1.0, true != 1) dump alike."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    return value


def _unique_items(
    validator: Validator, unique: bool, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not (unique and validator.is_type(instance, "array")):
        return
    seen: set[bytes] = set()
    for item in instance:
        key = orjson.dumps(_canonical(item), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
        if key in seen:
            yield ValidationError(f"{instance!r:.200} has non-unique elements")
            return
        seen.add(key)


_KEYWORDS: dict[str, Any] = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "uniqueItems": _unique_items,
}

# A class, not state: the 2020-12 keywords with the regular-expression ones and uniqueItems replaced.
Re2Validator = jsonschema.validators.extend(Draft202012Validator, validators=_KEYWORDS)


def _is_re2(instance: object) -> bool:
    if isinstance(instance, str) and (problem := pattern_problem(instance)) is not None:
        raise ValueError(problem)
    return True


def check_schema(schema: Mapping[str, Any]) -> None:
    """Raise :class:`jsonschema.SchemaError` unless ``schema`` is valid 2020-12 and each of its patterns runs on RE2.

    The meta-schema marks ``pattern`` and the keys of ``patternProperties`` as
    ``format: regex``; checking that format with RE2 is what reaches them all.
    """
    formats = FormatChecker(formats=())
    formats.checks("regex", raises=ValueError)(_is_re2)
    try:
        Draft202012Validator.check_schema(schema, format_checker=formats)
    except jsonschema.SchemaError as exc:
        if exc.validator == "format" and exc.cause is not None:
            exc.message = f"pattern {exc.instance!r:.200} cannot be used: {exc.cause}"
        raise


def validator(schema: Mapping[str, Any], before_keyword: Callable[[], None] | None = None) -> Validator:
    """A validator for a schema already checked with :func:`check_schema`.

    ``before_keyword`` runs before each keyword is applied (to any part of
    the instance); what it raises ends the validation.
    """
    if before_keyword is None:
        return Re2Validator(schema)  # type: ignore[no-any-return]
    keywords = {name: _hooked(fn, before_keyword) for name, fn in Re2Validator.VALIDATORS.items()}
    return jsonschema.validators.extend(Re2Validator, validators=keywords)(schema)  # type: ignore[no-any-return]


def _hooked(keyword: Callable[..., Any], before: Callable[[], None]) -> Callable[..., Any]:
    def apply(validator: Validator, value: Any, instance: Any, schema: Mapping[str, Any]) -> Any:
        before()
        return keyword(validator, value, instance, schema)

    return apply
