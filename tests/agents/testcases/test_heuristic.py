from decimal import Decimal

import pytest

from agents.testcases import CaseDraft, GenerationOptions, heuristic_cases, split_requirement
from agents.testcases.heuristic import rule_based_cases
from agents.testcases.boundaries import find_limits
from tests.agents.testcases.requirements import CHECKOUT_EN, LOGIN_ZH


def generate(text: str, **options: object) -> list[CaseDraft]:
    return heuristic_cases(split_requirement(text), GenerationOptions.model_validate(options))


def by_type(cases: list[CaseDraft], type_: str) -> list[CaseDraft]:
    return [c for c in cases if c.type == type_]


def covering(cases: list[CaseDraft], point_id: str) -> list[CaseDraft]:
    return [c for c in cases if point_id in c.covers]


def test_boundary_values_of_a_length_range() -> None:
    cases = generate(LOGIN_ZH, max_cases=50)
    boundary = by_type(covering(cases, "R2"), "boundary")  # 密码长度必须在 8 到 20 位之间
    data = {s.data: s.expected for c in boundary for s in c.steps}
    lengths = {"Abcd123": 7, "Abcd1234": 8, "Abcd1234Abcd1234Abcd": 20, "Abcd1234Abcd1234Abcd1": 21}
    for sample, length in lengths.items():
        shown = f"“{sample}”（{length} 位）"
        assert shown in data, (shown, list(data))
        rejected = length in (7, 21)
        assert ("被拒绝" in data[shown]) is rejected, data[shown]
    assert any("7/8/20/21" in c.title for c in boundary)
    assert all("「密码」" in s.action for c in boundary for s in c.steps)  # the step names the field


def test_threshold_and_security_cases_in_chinese() -> None:
    cases = generate(LOGIN_ZH, max_cases=50)
    r3 = by_type(covering(cases, "R3"), "boundary")  # 连续输错 5 次 … 30 分钟
    steps = {s.data: s.expected for c in r3 for s in c.steps}
    assert set(steps) == {"4次", "5次", "6次"}  # "锁定 30 分钟" is what the 5th failure does, not a second rule
    assert "不触发" in steps["4次"] and "锁定账号 30 分钟" in steps["5次"] and "不" not in steps["5次"]
    security = by_type(cases, "security")
    titles = " ".join(c.title for c in security)
    assert "暴力破解" in titles and "注入" in titles
    brute = next(c for c in security if "暴力破解" in c.title)
    assert "5 次" in brute.steps[0].action  # the stated attempt limit, not a made-up one
    assert any("' OR '1'='1'" in s.data for c in security for s in c.steps)
    negative = by_type(cases, "negative")
    r1 = {s.data for c in covering(negative, "R1") for s in c.steps}
    assert "ab@#$%!" in r1 and "空字符串（0 位）" in r1  # 字母或数字: bad characters; 4-20 位: empty
    assert covering(negative, "R2")  # 必须 … a constraint gets a negative case
    for case in cases:
        assert case.module == "登录" and case.covers and case.steps
        assert all(s.expected for s in case.steps)
    assert {c.type for c in cases} == {"functional", "boundary", "negative", "security"}


def test_english_wording_and_money_steps() -> None:
    cases = generate(CHECKOUT_EN, language="en", max_cases=60)
    assert all(c.module == "Checkout" for c in cases)
    shipping = by_type(covering(cases, "R4"), "boundary")  # Orders over $100.00 …
    steps = {s.data: s.expected for c in shipping for s in c.steps}
    assert set(steps) == {"$100.00", "$100.01"}  # min-1 and min of "over $100.00"
    assert "does not apply" in steps["$100.00"] and "rule applies" in steps["$100.01"]
    cart = by_type(covering(cases, "R1"), "boundary")  # at least 1 item and at most 99 items
    assert {s.data for c in cart for s in c.steps} == {"0 item", "1 item", "99 items", "100 items"}
    assert any(c.type == "security" and "tampering" in c.title for c in cases)
    assert not any("\u4e00" <= ch <= "\u9fff" for c in cases for ch in c.title + c.steps[0].action)


@pytest.mark.parametrize(
    ("text", "lo", "hi", "quantity"),
    [
        ("单笔金额不超过100元", None, "100", "money"),
        ("密码至少6位", "6", None, "length"),
        ("at most 5 attempts", None, "5", "count"),
        ("quantity between 1 and 99", "1", "99", "number"),
        ("discount between 5% and 50%", "5", "50", "percent"),
        ("amount must be less than 1,000.50 USD", None, "1000.49", "money"),
        ("年龄大于18岁", "19", None, "count"),
    ],
)
def test_limits(text: str, lo: str | None, hi: str | None, quantity: str) -> None:
    (limit,) = find_limits(text)
    assert (limit.lo, limit.hi, limit.quantity) == (
        Decimal(lo) if lo else None,
        Decimal(hi) if hi else None,
        quantity,
    )


def test_money_steps_by_cents_and_dates_are_not_ranges() -> None:
    cases = generate("单笔支付金额不超过100元。", max_cases=30)
    data = {s.data for c in by_type(cases, "boundary") for s in c.steps}
    assert data == {"100.00元", "100.01元"}
    assert find_limits("发布日期 2024-01-01") == []


def test_options_are_respected() -> None:
    points = split_requirement(LOGIN_ZH)
    only = heuristic_cases(points, GenerationOptions(case_types=["boundary", "negative"], priorities=["P2", "P3"]))
    assert only and {c.type for c in only} <= {"boundary", "negative"}
    assert {c.priority for c in only} <= {"P2", "P3"}
    capped = rule_based_cases(points, GenerationOptions(max_cases=4))
    assert len(capped.cases) == 4
    # The cap is spent on the numeric rules first: a boundary case for each, then their negatives.
    assert [c.type for c in capped.cases].count("boundary") == 3
    assert {p for c in capped.cases for p in c.covers} == {"R1", "R2", "R3"}
    assert capped.dropped["functional"] == 4 and capped.dropped["security"] >= 2  # said, not silently dropped
    assert any("max_cases 4" in note for note in capped.notes)
    named = heuristic_cases(points, GenerationOptions(module="账户中心", language="en", max_cases=3))
    assert {c.module for c in named} == {"账户中心"} and named[0].preconditions[0].startswith("The system")
    no_security = heuristic_cases(points, GenerationOptions(case_types=["functional", "boundary", "negative"]))
    assert not by_type(no_security, "security")


def test_priorities_put_security_and_core_rules_first() -> None:
    cases = generate(LOGIN_ZH, max_cases=50)
    order = ["P0", "P1", "P2", "P3"]
    assert [c.priority for c in cases] == sorted((c.priority for c in cases), key=order.index)
    assert all(c.priority == "P0" for c in by_type(cases, "security"))
    assert {c.priority for c in by_type(cases, "boundary")} == {"P1"}
    single = generate(LOGIN_ZH, priorities=["P2"], max_cases=50)
    assert {c.priority for c in single} == {"P2"}


def test_no_case_is_invented_for_a_type_the_text_does_not_support() -> None:
    # No numbers: no boundary case (an "empty and 256 characters" template would test nothing stated).
    written = rule_based_cases(split_requirement("登录成功后跳转到首页。页面显示欢迎语。"), GenerationOptions(case_types=["boundary"]))
    assert written.cases == [] and any("boundary" in note for note in written.notes)
    security = rule_based_cases(split_requirement("页面显示欢迎语。"), GenerationOptions(case_types=["security"]))
    assert security.cases == [] and any("security" in note for note in security.notes)
    assert heuristic_cases([], GenerationOptions()) == []


def test_cases_validate_as_model_output() -> None:
    for case in generate(CHECKOUT_EN, language="en", max_cases=100):
        again = CaseDraft.model_validate(case.model_dump())
        assert again == case and len(case.title) <= 200
        assert [s.step for s in case.steps] == list(range(1, len(case.steps) + 1))
