"""The rule-based generator scored on hand-written requirement fixtures (tests/fixtures/requirements)."""

from decimal import Decimal
from pathlib import Path

import pytest

from agents.testcases import split_requirement
from agents.testcases.schemas import CaseDraft, Step
from agents.testcases.yardstick import Score, load_fixtures, rule_based, score

FIXTURES = Path(__file__).parents[2] / "fixtures" / "requirements"


def test_the_yardstick_has_chinese_and_english_fixtures() -> None:
    fixtures = load_fixtures(FIXTURES)
    assert len(fixtures) >= 10
    assert {f.language for f in fixtures} == {"zh", "en"}
    assert sum(len(c.values) for f in fixtures for c in f.constraints) >= 100


@pytest.mark.parametrize("cap", [30, 10])
def test_rule_based_cases_are_never_wrong_and_find_the_boundaries(cap: int) -> None:
    total = Score(name="total")
    for fixture in load_fixtures(FIXTURES):
        points, cases = rule_based(fixture, cap)
        total.add(score(fixture, points, cases))
    assert total.wrong == []
    assert total.contradictions == []
    assert total.untestable_points == []
    assert total.recall >= 0.9, total.recall
    assert total.messages_found >= 0.9 * total.messages_expected
    assert len(total.useless) <= 0.05 * total.cases, total.useless


def test_the_scorer_catches_inverted_expectations_and_contradictions() -> None:
    # The failure the old generator shipped: "超过 99 件" read as the allowed range.
    fixture = next(f for f in load_fixtures(FIXTURES) if f.name == "cart_zh")
    points = split_requirement(fixture.text, fixture.language)

    def case(title: str, *steps: tuple[str, str, str]) -> CaseDraft:
        return CaseDraft(
            title=title,
            module="购物车",
            preconditions=[],
            steps=[Step(step=i, action=a, data=d, expected=e) for i, (a, d, e) in enumerate(steps, 1)],
            priority="P1",
            type="boundary",
            covers=["R2"],
        )

    inverted = case(
        "购物车商品总数：边界值",
        ("将「购物车商品总数」设为 99件", "99件", "操作被拒绝并提示错误"),
        ("将「购物车商品总数」设为 100件", "100件", "添加成功"),
    )
    right = case("购物车商品总数：上限", ("将「购物车商品总数」设为 100件", "100件", "提示“购物车最多添加 99 件商品”"))
    scored = score(fixture, points, [inverted, right])
    assert len(scored.wrong) == 2 and len(scored.contradictions) == 1
    assert ("cart-total", Decimal(100)) in scored.found and scored.messages_found == 1
    background = case("投诉降低 50%", ("将投诉率设为 50%", "50%", "满足目标"))
    assert score(fixture, points, [background]).useless  # a goal is not a requirement


def test_the_old_behaviour_scores_badly() -> None:
    # Guard against a scorer that passes anything: generic templates find no boundary values.
    fixture = next(f for f in load_fixtures(FIXTURES) if f.name == "login_zh")
    generic = [
        CaseDraft(
            title="登录：正常场景验证",
            module="登录",
            preconditions=[],
            steps=[Step(step=1, action="按需求执行操作", expected="系统行为符合需求")],
            priority="P1",
            type="functional",
            covers=["R1"],
        )
    ]
    scored = score(fixture, split_requirement(fixture.text), generic)
    assert scored.recall == 0 and scored.messages_found == 0
