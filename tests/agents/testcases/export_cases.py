"""Cases for the export tests: rule-based drafts, one accepted, one rejected, cells a spreadsheet would run."""

from agents.testcases import GenerationOptions, Step, TestCase, heuristic_cases, split_requirement
from tests.agents.testcases.requirements import LOGIN_ZH

POINTS = split_requirement(LOGIN_ZH)


def cases() -> list[TestCase]:
    """Rule-based drafts, one accepted, one rejected, and cells that a spreadsheet would run as formulas."""
    drafts = heuristic_cases(POINTS, GenerationOptions(max_cases=6))
    out = [TestCase.from_draft(d, id=f"tc-{i}", source="heuristic") for i, d in enumerate(drafts, start=1)]
    assert len(out) >= 4
    out[0] = out[0].model_copy(
        update={"title": '=HYPERLINK("http://evil")', "prompt_name": "testcase.generate", "prompt_version": 3}
    )
    out[1] = out[1].model_copy(update={"module": "@SUM(A1)", "title": "-1 元 | 退款", "review_status": "accepted"})
    out[2] = out[2].model_copy(
        update={
            "steps": [
                Step(step=1, action="输入用户名", data="-1", expected="提示用户名长度不正确"),
                Step(step=2, action="点击登录", data="+cmd|' /C calc'!A0", expected="停留在登录页"),
            ]
        }
    )
    out[3] = out[3].model_copy(update={"source": "llm", "review_status": "rejected"})
    return out
