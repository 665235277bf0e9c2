import json
from typing import Any

import pytest
from pydantic import ValidationError

from agents.testcases import GenerationOptions, GenerationOutput, validate_output


def answer() -> dict[str, Any]:
    return {
        "requirement_points": [
            {"id": "R1", "text": "密码长度必须在 8 到 20 位之间"},
            {"id": "R2", "text": "登录成功后跳转到首页"},
        ],
        "cases": [
            {
                "title": "密码长度 8 位可以登录",
                "module": "登录",
                "preconditions": ["已注册账号 test_user01"],
                "steps": [
                    {"step": 1, "action": "输入 8 位密码", "data": "Abcd1234", "expected": "输入被接受"},
                    {"step": 2, "action": "点击登录", "expected": "跳转到首页"},
                ],
                "priority": "P1",
                "type": "boundary",
                "covers": ["R1", "R2"],
            }
        ],
        "open_questions": ["密码是否区分大小写？"],
    }


def test_valid_answer_as_dict_and_string() -> None:
    output, errors = validate_output(answer())
    assert errors == [] and output is not None
    assert output.cases[0].steps[1].data == ""
    text_output, errors = validate_output(json.dumps(answer(), ensure_ascii=False))
    assert errors == [] and text_output == output


def test_fenced_and_wrapped_json_is_accepted() -> None:
    expected = GenerationOutput.model_validate(answer())
    assert [c.title for c in expected.cases] == ["密码长度 8 位可以登录"]
    assert [p.id for p in expected.requirement_points] == ["R1", "R2"]
    assert expected.open_questions == ["密码是否区分大小写？"]
    body = json.dumps(answer(), ensure_ascii=False, indent=2)
    for raw in (
        f"```json\n{body}\n```",
        f"Here are the cases:\n```\n{body}\n```\nHope this helps.",
        f"<think>the user wants cases</think>\n{body}",
        f"Sure! {body} Done.",
    ):
        output, errors = validate_output(raw)
        assert errors == [], raw[:40]
        assert output == expected, raw[:40]


def test_garbage_and_non_objects_are_errors_at_the_root() -> None:
    output, errors = validate_output("I cannot help with that.")
    assert output is None and len(errors) == 1 and errors[0].startswith("$: not valid JSON")
    assert validate_output("   ")[1] == ["$: the answer is empty; answer with one JSON object"]
    assert validate_output("[1, 2]")[1][0].startswith("$: expected a JSON object")
    assert validate_output('{"cases": [}')[1][0].startswith("$: not valid JSON (")


def test_schema_errors_name_their_json_path() -> None:
    bad = answer()
    del bad["cases"][0]["steps"][1]["expected"]
    bad["cases"][0]["priority"] = "High"
    bad["cases"][0]["extra"] = 1
    del bad["requirement_points"]
    output, errors = validate_output(bad)
    assert output is None
    assert "cases[0].steps[1].expected: field required" in errors
    assert "requirement_points: field required" in errors
    assert "cases[0].extra: extra inputs are not permitted" in errors
    priority = next(e for e in errors if e.startswith("cases[0].priority: "))
    assert "(got 'HIGH')" in priority


def test_semantic_errors_unknown_covers_and_duplicate_ids() -> None:
    bad = answer()
    bad["cases"][0]["covers"] = ["R1", "R9"]
    bad["requirement_points"].append({"id": "R2", "text": "重复"})
    output, errors = validate_output(bad)
    assert output is None
    assert errors == [
        "requirement_points[2].id: duplicate id 'R2'; number the points R1..Rn once",
        "cases[0].covers[1]: 'R9' is not one of the requirement_points (R1, R2, R2)",
    ]


def test_steps_are_renumbered_and_values_normalised() -> None:
    raw = answer()
    raw["cases"][0]["steps"][0]["step"] = 0
    raw["cases"][0]["steps"][1]["step"] = 7
    raw["cases"][0]["priority"] = "p0"
    raw["cases"][0]["type"] = "Boundary"
    raw["cases"][0]["covers"] = ["r1", "R1"]
    del raw["open_questions"]
    output, errors = validate_output(raw)
    assert errors == [] and output is not None
    case = output.cases[0]
    assert [s.step for s in case.steps] == [1, 2]
    assert (case.priority, case.type, case.covers) == ("P0", "boundary", ["R1"])
    assert output.open_questions == []


def test_empty_strings_and_lists_fail() -> None:
    raw = answer()
    raw["cases"][0]["title"] = "  "
    raw["cases"][0]["steps"] = []
    raw["cases"][0]["covers"] = []
    _, errors = validate_output(raw)
    paths = {e.split(":")[0] for e in errors}
    assert paths == {"cases[0].title", "cases[0].steps", "cases[0].covers"}


def test_generation_options() -> None:
    options = GenerationOptions()
    assert options.case_types == ["functional", "boundary", "negative", "security"]
    assert (options.priorities, options.language, options.max_cases) == (["P0", "P1", "P2", "P3"], "zh", 20)
    bad: dict[str, Any]
    for bad in ({"case_types": []}, {"case_types": ["boundary", "boundary"]}, {"max_cases": 101}, {"language": "fr"}):
        with pytest.raises(ValidationError):
            GenerationOptions.model_validate(bad)
