import pytest

from agents.testcases import CaseDraft, RequirementPoint, Step, TestCase, case_text, coverage, near_duplicates


def case(case_id: str, covers: list[str], status: str = "pending") -> TestCase:
    return TestCase(
        id=case_id,
        title=f"case {case_id}",
        module="登录",
        preconditions=["已注册账号"],
        steps=[Step(step=1, action="输入密码", data="Abcd1234", expected="登录成功")],
        priority="P1",
        type="functional",
        covers=covers,
        source="llm",
        prompt_name="testcase.generate",
        prompt_version=2,
        review_status=status,  # type: ignore[arg-type]
    )


POINTS = [RequirementPoint(id=f"R{i}", text=f"规则 {i}") for i in range(1, 5)]


def test_coverage_lists_cases_per_point_and_the_uncovered() -> None:
    result = coverage(POINTS, [case("a", ["R1", "R2"]), case("b", ["R2", "R9"]), case("c", ["R4"], "rejected")])
    assert [(p.id, p.text, p.cases) for p in result.points] == [
        ("R1", "规则 1", ["a"]),
        ("R2", "规则 2", ["a", "b"]),
        ("R3", "规则 3", []),
        ("R4", "规则 4", ["c"]),
    ]
    assert result.uncovered == ["R3"] and result.ratio == 0.75
    strict = coverage(POINTS, [case("a", ["R1"]), case("c", ["R4"], "rejected")], exclude_rejected=True)
    assert strict.uncovered == ["R2", "R3", "R4"] and strict.ratio == 0.25
    assert coverage(POINTS[:3], []).ratio == 0.0 and coverage([], [case("a", ["R1"])]).ratio == 0.0
    assert coverage(POINTS[:3], [case("a", ["R1", "R2", "R3"])]).ratio == 1.0
    assert coverage(POINTS[:3], [case("a", ["R1"])]).ratio == pytest.approx(0.3333)


def test_near_duplicates_keep_the_first_of_each_group() -> None:
    vectors = [
        [1.0, 0.0, 0.0],
        [10.0, 0.5, 0.0],  # same direction as 0, unnormalised: dropped
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0],  # zero vector: similar to nothing
        [0.0, 0.96, 0.28],  # cosine 0.96 with 2
        [-1.0, 0.0, 0.0],
    ]
    assert near_duplicates(vectors, 0.95) == [1, 4]
    assert near_duplicates(vectors, 0.97) == [1]
    assert near_duplicates(vectors, 1.0) == []
    assert near_duplicates([], 0.9) == []
    # a chain a~b, b~c with a !~ c: b is dropped, so c is compared with a only and kept
    chain = [[1.0, 0.0], [0.8, 0.6], [0.28, 0.96]]
    assert near_duplicates(chain, 0.79) == [1]
    with pytest.raises(ValueError):
        near_duplicates([[1.0, 0.0], [1.0]], 0.9)


def test_case_text_has_title_preconditions_steps_and_expected() -> None:
    draft = CaseDraft.model_validate(case("a", ["R1"]).model_dump(include=set(CaseDraft.model_fields)))
    assert case_text(draft) == "case a\n- 已注册账号\n1. 输入密码 [Abcd1234] -> 登录成功"
