from agents.testcases import detect_language, split_requirement
from tests.agents.testcases.requirements import CHECKOUT_EN, LOGIN_ZH, LOGIN_ZH_DOC


def texts(text: str) -> list[str]:
    return [p.text for p in split_requirement(text)]


def test_chinese_sentences_become_numbered_points() -> None:
    points = split_requirement(LOGIN_ZH)
    assert [p.id for p in points] == ["R1", "R2", "R3", "R4"]
    assert [p.text for p in points] == [
        "用户名为 4-20 位字母或数字",
        "密码长度必须在 8 到 20 位之间",
        "连续输错 5 次密码锁定账号 30 分钟",
        "登录成功后跳转到首页",
    ]


def test_chinese_document_drops_headings_prose_and_repeats() -> None:
    assert texts(LOGIN_ZH_DOC) == [
        "用户名不能为空",
        "密码规则：至少6位",
        "密码规则：不超过 20 位",
        "验证码 6 位数字，有效期 5 分钟",
        "登录成功后跳转到首页",
    ]


def test_english_lists_sentences_and_lead_ins() -> None:
    assert texts(CHECKOUT_EN) == [
        "The cart must contain at least 1 item and at most 99 items before checkout",
        "Coupon codes are 6-12 characters long",
        "Only one coupon can be applied per order",
        "Orders over $100.00 get free shipping, e.g. a $120.50 order ships free",
        "The user must pay within 30 minutes, otherwise the order is cancelled",
        "Payment supports Visa and Mastercard",
        "The password must be 8 to 20 characters",
        "The password must contain a digit",
    ]


def test_decimals_and_abbreviations_do_not_split_sentences() -> None:
    assert texts("The fee is 3.5% of the amount, i.e. at most 2.50 USD. Refunds must be issued within 7 days.") == [
        "The fee is 3.5% of the amount, i.e. at most 2.50 USD",
        "Refunds must be issued within 7 days",
    ]


def test_nothing_testable_gives_no_points() -> None:
    assert split_requirement("") == []
    assert split_requirement("# Overview\n\nBackground\n背景") == []


def test_language_detection() -> None:
    assert detect_language(LOGIN_ZH) == "zh"
    assert detect_language(CHECKOUT_EN) == "en"
    assert detect_language("用户通过 OAuth token 登录后可以查看订单") == "zh"
    assert detect_language("The 支付宝 button must be shown on the checkout page") == "en"


def test_public_api() -> None:
    import agents.testcases

    assert sorted(agents.testcases.__all__) == [
        "CaseDraft",
        "CaseType",
        "Coverage",
        "GenerationOptions",
        "GenerationOutput",
        "PointCoverage",
        "Priority",
        "RequirementPoint",
        "Step",
        "TestCase",
        "case_text",
        "coverage",
        "detect_language",
        "export_csv",
        "export_json",
        "export_markdown",
        "export_xlsx",
        "heuristic_cases",
        "infer_module",
        "near_duplicates",
        "semantic_errors",
        "split_requirement",
        "validate_output",
    ]
