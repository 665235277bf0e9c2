"""The reusable edge types and guards of ``core.validation``, without a server."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import InvalidRequest
from core.validation import (
    INT32_MAX,
    INT64_MAX,
    MAX_DEPTH,
    Int32,
    Int64,
    Json,
    JsonProblem,
    Text,
    bounded_int,
    check_json,
    header_text,
    parse,
)
from gateway.prompts.spec import from_yaml


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Text(8, 1)]
    small: Int32 | None = Field(default=None, gt=0)
    big: Int64 | None = None
    data: Annotated[dict[str, Any], Json(max_depth=3)] = Field(default_factory=dict)


def refused(body: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        parse(Model, body)
    return info.value


def test_text_length_and_nul() -> None:
    assert parse(Model, {"name": "abcdefgh"}).name == "abcdefgh"
    assert refused({"name": "abcdefghi"}).param == "name"
    assert refused({"name": ""}).param == "name"
    with pytest.raises(ValidationError, match="NUL"):
        Model.model_validate({"name": "a\x00"})  # the type refuses it too, outside parse()


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("small", INT32_MAX, True),
        ("small", INT32_MAX + 1, False),
        ("small", 0, False),
        ("big", INT64_MAX, True),
        ("big", INT64_MAX + 1, False),
        ("big", -(2**63), True),
        ("big", -(2**63) - 1, False),
        ("big", 1.8446744073709552e19, False),  # what orjson makes of integers past 64 bits
    ],
)
def test_integer_ranges(field: str, value: Any, ok: bool) -> None:
    if ok:
        assert getattr(parse(Model, {"name": "n", field: value}), field) == value
    else:
        assert refused({"name": "n", field: value}).param == field


def test_json_field_depth() -> None:
    assert parse(Model, {"name": "n", "data": {"a": {"b": 1}}}).data == {"a": {"b": 1}}
    error = refused({"name": "n", "data": {"a": {"b": {"c": {"d": 1}}}}})
    assert error.param == "data" and "deeper than 3" in error.message


def test_parse_refuses_nul_and_depth_anywhere() -> None:
    assert refused({"name": "n", "extra": ["x", "y\x00"]}).param == "extra[1]"
    assert "NUL" in refused({"name": "n", "k\x00": 1}).message
    deep: Any = 1
    for _ in range(MAX_DEPTH):
        deep = [deep]
    error = refused({"name": "n", "extra": deep})
    assert error.param == "extra" and f"deeper than {MAX_DEPTH}" in error.message


def test_check_json_survives_any_depth() -> None:
    deep: Any = []
    for _ in range(200_000):
        deep = [deep]
    with pytest.raises(JsonProblem):
        check_json(deep)
    with pytest.raises(JsonProblem, match="more than 10"):
        check_json(list(range(11)), max_nodes=10)
    check_json({"fine": [1, 2.5, None, True, "text"]})


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        ("0", True),
        (str(INT64_MAX), True),
        (str(INT64_MAX + 1), False),
        ("-1", False),
        ("x", False),
        ("9" * 5000, False),
    ],
)
def test_bounded_int(raw: str, ok: bool) -> None:
    if ok:
        assert bounded_int(raw, "Last-Event-ID", "last_event_id", 0, INT64_MAX) == int(raw)
    else:
        with pytest.raises(InvalidRequest) as info:
            bounded_int(raw, "Last-Event-ID", "last_event_id", 0, INT64_MAX)
        assert info.value.param == "last_event_id"


def test_header_text() -> None:
    assert header_text({}, "Idempotency-Key", 5) is None
    assert header_text({"Idempotency-Key": "abc"}, "Idempotency-Key", 5) == "abc"
    with pytest.raises(InvalidRequest) as info:
        header_text({"Idempotency-Key": "abcdef"}, "Idempotency-Key", 5)
    assert info.value.param == "Idempotency-Key"


def test_yaml_depth_is_checked_before_building() -> None:
    with pytest.raises(InvalidRequest, match="nested deeper"):
        from_yaml("name: a.b\nx: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(InvalidRequest, match="nested deeper"):
        from_yaml("name: a.b\nx:\n" + "".join("  " * i + "- \n" for i in range(1, 200)))


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")

    module: str = ""


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_cases: int = 1
    steps: list[Inner | str] = Field(default_factory=list)


def test_unknown_fields_get_the_closest_known_one() -> None:
    with pytest.raises(InvalidRequest) as typo:
        parse(Outer, {"max_case": 2})
    assert typo.value.param == "max_case" and "did you mean 'max_cases'?" in typo.value.message
    with pytest.raises(InvalidRequest) as nested:
        parse(Outer, {"steps": [{"modul": "x"}]})
    assert "did you mean 'module'?" in nested.value.message  # found through the list and the union
    with pytest.raises(InvalidRequest) as far:
        parse(Outer, {"zzz": 1})
    assert "known fields: max_cases, steps" in far.value.message
