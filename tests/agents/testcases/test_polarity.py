"""The rule-based cases read what a number means: an allowed range, an error condition, a threshold, a total."""

from agents.testcases import CaseDraft, GenerationOptions, split_requirement
from agents.testcases.heuristic import rule_based_cases
from tests.agents.testcases.requirements import LOGIN_ZH


def cases_for(text: str, **options: object) -> list[CaseDraft]:
    return rule_based_cases(split_requirement(text), GenerationOptions.model_validate(options)).cases


def outcomes(cases: list[CaseDraft], type_: str = "boundary") -> dict[str, str]:
    return {s.data: s.expected for c in cases if c.type == type_ for s in c.steps}


def test_an_error_condition_gives_the_complement_as_the_allowed_range() -> None:
    text = "用户名长度小于 3 位或大于 20 位时，提示“用户名长度需为 3-20 位”。"
    steps = outcomes(cases_for(text))
    assert set(steps) == {
        "“Ab”（2 位）",
        "“Abc”（3 位）",
        "“Abcd1234Abcd1234Abcd”（20 位）",
        "“Abcd1234Abcd1234Abcd1”（21 位）",
    }
    assert steps["“Ab”（2 位）"] == "提示“用户名长度需为 3-20 位”，长度 2 位 被拒绝"  # the requirement's own words
    assert "校验通过" in steps["“Abc”（3 位）"] and "校验通过" in steps["“Abcd1234Abcd1234Abcd”（20 位）"]
    assert "被拒绝" in steps["“Abcd1234Abcd1234Abcd1”（21 位）"]
    boundary = next(c for c in cases_for(text) if c.type == "boundary")
    assert all("「用户名」" in s.action for s in boundary.steps)


def test_a_total_limit_and_its_error_wording_agree() -> None:
    for text in ("购物车最多 99 件商品。", "购物车商品超过 99 件时提示“购物车最多添加 99 件商品”。"):
        steps = outcomes(cases_for(text))
        assert "校验通过" in steps["99件"] and "被拒绝" in steps["100件"], (text, steps)
    english = outcomes(cases_for('Adding more than 99 items shows "Your cart is full".', language="en"))
    assert "accepted" in english["99 items"] and english["100 items"].startswith('Shows "Your cart is full"')


def test_count_thresholds_use_the_requirements_number_and_message() -> None:
    text = "连续输错密码时，第 4 次提示“还剩 1 次机会”，第 5 次锁定账号 30 分钟。"
    cases = cases_for(text, max_cases=50)
    steps = outcomes(cases)
    assert set(steps) == {"4次", "5次", "6次"}
    assert steps["4次"].startswith("提示“还剩 1 次机会”") and "不触发：锁定账号" in steps["4次"]
    assert "触发：锁定账号 30 分钟" in steps["5次"] and "不" not in steps["5次"]
    brute = next(c for c in cases if c.type == "security" and "暴力破解" in c.title)
    assert "5 次" in brute.steps[0].action and "10" not in brute.steps[0].action


def test_english_equivalents() -> None:
    text = (
        "The password must be between 8 and 20 characters.\n"
        "After 5 failed attempts the account is locked and the page shows 'Invalid password'.\n"
    )
    cases = cases_for(text, language="en", max_cases=50)
    steps = outcomes(cases)
    assert "rejected" in steps['"Abcd123" (7 characters)'] and "accepted" in steps['"Abcd1234" (8 characters)']
    assert "accepted" in steps['"Abcd1234Abcd1234Abcd" (20 characters)']
    assert "rejected" in steps['"Abcd1234Abcd1234Abcd1" (21 characters)']
    assert "not triggered" in steps["4 failed attempts"]
    assert (
        steps["5 failed attempts"] == 'At 5 failed attempts: triggered: the account is locked; shows "Invalid password"'
    )
    brute = next(c for c in cases if c.type == "security" and "brute-force" in c.title)
    assert "5 times" in brute.steps[0].action


def test_no_number_is_invented() -> None:
    cases = cases_for("用户登录时需要输入密码。", max_cases=50)
    brute = next(c for c in cases if c.type == "security" and "暴力破解" in c.title)
    assert not any(ch.isdigit() for ch in brute.steps[0].action + brute.steps[0].expected)


def test_goals_and_metrics_are_not_requirement_points() -> None:
    text = """# 登录需求
## 背景
近期登录投诉较多。
## 目标
登录成功率提升到 98%。
## 需求
1. 登录接口 P95 响应时间不超过 800 毫秒。
2. 密码长度为 8-20 位。
"""
    assert [p.text for p in split_requirement(text)] == ["密码长度为 8-20 位"]
    english = (
        "Background: sign-in fails often.\nGoal: raise the success rate to 98%.\n- Passwords are 8 to 20 characters."
    )
    assert [p.text for p in split_requirement(english)] == ["Passwords are 8 to 20 characters"]


def test_the_cap_spends_on_boundaries_first_and_says_what_it_left_out() -> None:
    written = rule_based_cases(split_requirement(LOGIN_ZH), GenerationOptions(max_cases=5))
    assert [c.type for c in written.cases].count("boundary") == 3  # 4-20 位, 8 到 20 位, 5 次
    assert written.dropped and sum(written.dropped.values()) > 0 and "security" in written.dropped
    assert written.notes[0] == "规则草稿：使用前请评审"
    assert any("max_cases 5" in note and "security" in note for note in written.notes)
    everything = rule_based_cases(split_requirement(LOGIN_ZH), GenerationOptions(max_cases=100))
    assert everything.dropped == {} and {c.type for c in everything.cases} == {
        "functional",
        "boundary",
        "negative",
        "security",
    }


def test_a_case_covers_only_the_points_it_was_built_for() -> None:
    cases = cases_for(LOGIN_ZH, max_cases=100)
    assert all(len(c.covers) == 1 for c in cases)
    for case in cases:
        if case.type == "boundary":
            (point,) = [p for p in split_requirement(LOGIN_ZH) if p.id == case.covers[0]]
            assert case.title.startswith(point.text[:10])


def test_negated_comparisons_and_conditions() -> None:
    steps = outcomes(cases_for("密码不能少于 8 位。"))  # not "less than 8 is allowed"
    assert "被拒绝" in steps["“Abcd123”（7 位）"] and "校验通过" in steps["“Abcd1234”（8 位）"]
    english = outcomes(cases_for("The display name must not be shorter than 2 characters.", language="en"))
    assert "rejected" in english['"A" (1 characters)'] and "accepted" in english['"Ab" (2 characters)']
    # What happens to a refused value, when the requirement says it: truncation, not an error.
    cut = outcomes(cases_for("搜索关键字不能超过 50 个字符，超过 50 个字符时截断。"))
    assert "校验通过" in cut["“Abcd1234…（共 50 个字符）”（50 位）"]
    assert cut["“Abcd1234…（共 51 个字符）”（51 位）"] == "长度 51 位 超出范围：截断"
    # A strict comparison in a condition is a rule that applies on its side, not a validation.
    discount = outcomes(cases_for("购买数量大于 10 件时打 95 折。"))
    assert discount == {"10件": "10件 不满足条件，规则不适用：打 95 折", "11件": "11件 满足条件，规则生效：打 95 折"}
    assert outcomes(cases_for("列表每页显示 20 条商品。")) == {}  # a page size is not a threshold


def test_a_condition_next_to_a_limit_stays_a_condition() -> None:
    steps = outcomes(cases_for("订单金额满 200 元可使用满减优惠券，每个订单最多使用 1 张优惠券。"))
    assert steps["199.99元"] == "199.99元 不满足条件，规则不适用：可使用满减优惠券"
    assert steps["200.00元"] == "200.00元 满足条件，规则生效：可使用满减优惠券"
    assert "校验通过" in steps["1张"] and "被拒绝" in steps["2张"]


def test_document_metadata_is_not_a_requirement_point() -> None:
    text = "# 需求文档 V1.2\n文档作者：产品部　更新日期：2026-11-20\nVersion: 3\n1. 密码长度为 8-20 位。"
    assert [p.text for p in split_requirement(text)] == ["密码长度为 8-20 位"]


def test_unquoted_messages_are_quoted_and_generic_ones_are_not() -> None:
    steps = outcomes(cases_for("购物车商品超过 99 件时提示购物车已满。"))
    assert steps["100件"] == "提示“购物车已满”，100件 被拒绝"
    english = outcomes(cases_for("Adding more than 99 items shows Cart is full.", language="en"))
    assert english["100 items"] == 'Shows "Cart is full"; 100 items is rejected'
    generic = outcomes(cases_for("密码长度为 8-20 位，否则提示错误。"))
    assert not any("“" in expected for expected in generic.values())
    lock = outcomes(cases_for("连续输错 5 次后锁定账号并提示账号已锁定。"))
    assert lock["4次"] == "尚未达到 5次，不触发：锁定账号" and lock["5次"].endswith("并提示“账号已锁定”")
