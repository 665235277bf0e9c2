"""Writing one rule-based case: preconditions, numbered steps, the priority among those allowed."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from agents.testcases.schemas import PRIORITIES, CaseDraft, CaseType, GenerationOptions, Priority, Step
from agents.testcases.wording import Words, words

_LOGIN = re.compile(r"登录|登陆|密码|口令|验证码|log ?in|sign ?in|password|credential|\botp\b", re.IGNORECASE)


@dataclass(slots=True)
class Candidate:
    tier: int  # what the cap spends first: 0 numeric boundaries, 1 negatives, 2 functional paths, 3 security
    level: int  # 0 = most important; mapped onto the allowed priorities
    seq: int
    draft: CaseDraft


class Writer:
    def __init__(self, options: GenerationOptions, module: str) -> None:
        self.w: Words = words(options.language)
        self.lang = options.language
        self.module = module
        self.allowed: list[Priority] = sorted(set(options.priorities), key=PRIORITIES.index)
        self.seq = itertools.count()

    def case(
        self,
        tier: int,
        level: int,
        type_: CaseType,
        title: str,
        covers: list[str],
        steps: list[tuple[str, str, str]],
        **fmt: str,
    ) -> Candidate:
        w, module = self.w, self.module
        pre = [w["pre_system"].format(module=module), w["pre_data"]]
        if type_ != "security" and _LOGIN.search(" ".join([title, *(s[0] for s in steps)])):
            pre.append(w["pre_account"])
        draft = CaseDraft(
            title=clip(title, 200),
            module=module,
            preconditions=pre,
            steps=[
                Step(step=i, action=fill(a, fmt), data=d, expected=fill(e, fmt))
                for i, (a, d, e) in enumerate(steps, start=1)
            ],
            priority=self.allowed[min(level, len(self.allowed) - 1)],
            type=type_,
            covers=covers,
        )
        return Candidate(tier, level, next(self.seq), draft)


def fill(template: str, values: dict[str, str]) -> str:
    # str.replace, not str.format: the requirement text may hold braces of its own.
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


def clip(text: str, size: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= size else text[: size - 1].rstrip() + "…"


def short(text: str, size: int = 40) -> str:
    return clip(text, size)
