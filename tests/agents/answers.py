"""Requirement texts and scripted model answers for the test-case generation tests."""

from __future__ import annotations

import json
from typing import Any

LOGIN_ZH = (
    "登录功能需求：\n"
    "1. 用户名为 4-20 位字母或数字。\n"
    "2. 密码长度必须在 8 到 20 位之间。\n"
    "3. 连续输错 5 次密码锁定账号 30 分钟。\n"
    "4. 登录成功后跳转到首页。"
)
CHECKOUT_EN = (
    "Checkout: the cart must contain between 1 and 99 items. "
    "A coupon code can be applied once per order. "
    "Orders above 500 USD must require SMS verification."
)


TEXTS: dict[str, dict[str, Any]] = {
    "zh": {
        "points": ["密码长度 8-20 位", "输错 5 次锁定 30 分钟"],
        "titles": ["密码 8 位可以登录", "连续输错 5 次后账号锁定"],
        "module": "登录",
        "pre": "已注册用户 alice",
        "steps": [
            ("输入用户名 alice", "输入成功"),
            ("输入 8 位密码并登录", "跳转首页"),
            ("连续输错密码 5 次", "提示锁定"),
        ],
        "question": "锁定期间是否允许找回密码？",
    },
    "en": {
        "points": ["cart holds 1 to 99 items", "coupon once per order"],
        "titles": ["Cart with 1 item checks out", "Second coupon is refused"],
        "module": "checkout",
        "pre": "a signed-in shopper",
        "steps": [("add 1 item", "cart shows 1"), ("check out", "order placed"), ("apply a coupon twice", "refused")],
        "question": "Do coupons stack?",
    },
}


def valid_answer(language: str = "zh", title_prefix: str = "", duplicate: bool = False) -> str:
    t = TEXTS[language]
    steps = [{"step": i, "action": a, "expected": e} for i, (a, e) in enumerate(t["steps"], start=1)]
    steps[1]["data"] = "Abc12345"
    return (
        json.dumps(
            {
                "requirement_points": [{"id": f"R{i}", "text": p} for i, p in enumerate(t["points"], start=1)],
                "cases": [
                    {
                        "title": title_prefix + t["titles"][0],
                        "module": t["module"],
                        "preconditions": [t["pre"]],
                        "steps": steps[:2],
                        "priority": "P0",
                        "type": "functional",
                        "covers": ["R1"],
                    },
                    {
                        "title": title_prefix + t["titles"][1],
                        "module": t["module"],
                        "preconditions": [],
                        "steps": [{**steps[2], "step": 1}],
                        "priority": "P1",
                        "type": "negative",
                        "covers": ["R2"],
                    },
                ],
                "open_questions": [t["question"]],
            },
            ensure_ascii=False,
        )
        if not duplicate
        else _with_duplicate(valid_answer(language, title_prefix))
    )


def _with_duplicate(answer: str) -> str:
    """The same answer plus a reworded copy of its first case (same type, same test data)."""
    data = json.loads(answer)
    copy = dict(data["cases"][0])
    copy["title"] = "使用 8 位密码登录成功"
    data["cases"].append(copy)
    return json.dumps(data, ensure_ascii=False)
