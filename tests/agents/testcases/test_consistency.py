from agents.testcases import GenerationOptions, heuristic_cases, split_requirement
from agents.testcases.consistency import find_conflicts, remove_conflicts, step_field
from agents.testcases.reading import outcome, step_values
from agents.testcases.schemas import CaseDraft, CaseType, Step


def case(title: str, type_: CaseType, *steps: tuple[str, str, str]) -> CaseDraft:
    return CaseDraft(
        title=title,
        module="登录",
        preconditions=[],
        steps=[Step(step=i, action=a, data=d, expected=e) for i, (a, d, e) in enumerate(steps, 1)],
        priority="P1",
        type=type_,
        covers=["R1"],
    )


# The contradiction the old generator exported: 7 characters accepted in one case, rejected in another.
LOOSE = case(
    "密码：下限",
    "functional",
    ("在「密码」中输入 6 个字符并提交", "“Abcd12”（6 位）", "登录成功"),
    ("在「密码」中输入 7 个字符并提交", "“Abcd123”（7 位）", "登录成功"),
    ("在「密码」中输入 8 个字符并提交", "“Abcd1234”（8 位）", "提示“密码长度需为 8-20 位”，登录失败"),
)
STRICT = case(
    "密码：边界值 7/8",
    "boundary",
    ("在「密码」中输入 7 个字符并提交", "“Abcd123”（7 位）", "长度 7 位 超出范围，输入被拒绝并提示错误"),
    ("在「密码」中输入 8 个字符并提交", "“Abcd1234”（8 位）", "长度 8 位 在范围内，校验通过，无错误提示"),
)
OTHER_FIELD = case(
    "用户名：边界值 7",
    "boundary",
    ("在「用户名」中输入 7 个字符并提交", "“Abcd123”（7 位）", "校验通过"),
)


def test_the_same_field_and_value_with_opposite_outcomes_is_a_conflict() -> None:
    conflicts = find_conflicts([LOOSE, STRICT, OTHER_FIELD])
    assert {(c.field, int(c.value)) for c in conflicts} == {("密码", 7), ("密码", 8)}
    seven = next(c for c in conflicts if c.value == 7)
    assert seven.accepted_by == (0,) and seven.rejected_by == (1,)
    assert "密码 = 7" in seven.describe([LOOSE, STRICT, OTHER_FIELD])


def test_the_offender_is_removed_and_named() -> None:
    kept, removed = remove_conflicts([LOOSE, STRICT, OTHER_FIELD])
    assert kept == [STRICT, OTHER_FIELD]  # the boundary case was built for the rule; the loose one goes
    assert len(removed) == 1 and removed[0].startswith("密码：下限: contradicts")
    assert remove_conflicts([STRICT, OTHER_FIELD]) == ([STRICT, OTHER_FIELD], [])


def test_the_majority_wins_over_a_lone_dissenter() -> None:
    again = STRICT.model_copy(update={"title": "密码：边界值（复核）"})
    kept, removed = remove_conflicts([STRICT, LOOSE, again])
    assert kept == [STRICT, again] and len(removed) == 1


def test_reading_steps() -> None:
    assert step_values("在「手机号」中输入 10 个字符", "“1234567890”（10 位）") == [10]
    assert step_values('Set "quantity" to 100 items', "100 items") == [100]
    assert step_values("Enter a password", "Abcd1234") == []  # digits inside a sample are not a value
    assert outcome("账号未锁定，提示“密码错误”") == "accept"
    assert outcome("长度 2 位 超出范围，输入被拒绝并提示错误") == "reject"
    assert outcome("no error is shown and the item is accepted") == "accept"
    assert outcome('Shows "Invalid coupon code"') == "reject"
    assert outcome("检查页面布局") is None
    assert step_field('Enter 5 characters in "coupon code" and submit') == "coupon code"
    assert step_field("输入 7 位密码") == step_field("输入 9 位密码")


def test_generated_sets_have_no_conflicts() -> None:
    text = "用户名长度为 3-20 位。用户名长度小于 3 位或大于 20 位时，提示“用户名长度需为 3-20 位”。密码长度为 8-20 位。"
    cases = heuristic_cases(split_requirement(text), GenerationOptions(max_cases=100))
    assert cases and find_conflicts(cases) == []
