"""Reading a written case back: the input values of a step, the field it names, the outcome it expects.

Shared by the consistency check (any source: a model's cases or the rules') and the requirement
yardstick, so both judge cases the same way, from their text alone. The outcome reader is deliberately
plain: keywords in the expected result, negated when a negation word comes before them in the same
clause ("账号未锁定", "no error is shown"); quoted messages are read last, since a message's wording
("用户名长度需为 3-20 位") says little about acceptance.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal

Outcome = Literal["accept", "reject"]

_I = re.IGNORECASE
QUOTED = re.compile(r"“([^”]{1,200})”|「([^」]{1,200})」|\"([^\"]{1,200})\"|(?<![A-Za-z])'([^'\n]{2,200})'(?![A-Za-z])")
_NUMBER = re.compile(r"(?<![A-Za-z0-9_.])-?\d+(?:\.\d+)?(?![A-Za-z0-9])")
_LENGTH = re.compile(r"(?<![\d.])(\d+)\s*(?:位|个字符|个字|字符|characters?|chars?|digits?)(?![A-Za-z])", _I)
_CLAUSE = re.compile(r"[，。；,;！!？?\n]")
_NEGATION = re.compile(r"未|不|没|无|非|\bnot\b|\bno\b|n't\b|\bnever\b|\bwithout\b", _I)
# Reject words that carry their own negation come first, so that "不允许" is not read as "允许".
_WORDS = re.compile(
    r"(?P<reject>不允许|不可|不能|无法|无效|不符合|不通过|禁止|拒绝|失败|错误|超出|锁定|置灰|"
    r"not allowed|cannot|can't|invalid|rejected?|refused|fail(?:s|ed)?\b|errors?\b|locked|blocked|out of range|"
    r"exceeds?\b)"
    r"|(?P<accept>通过|成功|允许|正常|有效|接受|生效|满足|可用|"
    r"(?<![a-z])accept(?:s|ed)?\b|succeed(?:s|ed)?\b|success\w*|allowed|(?<![a-z])valid\b|passes|appl(?:y|ies)\b|"
    r"meets?\b|saved)",
    _I,
)


def numbers(text: str) -> list[Decimal]:
    """Standalone numbers in ``text``; digits inside a sample string such as ``Abcd1234`` are not numbers."""
    return [Decimal(m.group(0)) for m in _NUMBER.finditer(text)]


def step_values(action: str, data: str) -> list[Decimal]:
    """The input values of a step: the numbers of its test data, else those of its action.

    A stated length wins over the digits of the sample it describes: "“12345”（5 位）" enters 5 characters.
    """
    text = strip_quoted(data, keep_inner=True)
    stated = [Decimal(n) for n in _LENGTH.findall(text)]
    found = stated or numbers(text) or numbers(strip_quoted(action))
    return list(dict.fromkeys(found))


def quoted(text: str) -> list[str]:
    return [next(g for g in m.groups() if g is not None) for m in QUOTED.finditer(text)]


def strip_quoted(text: str, keep_inner: bool = False) -> str:
    """``text`` without its quoted messages (or, with ``keep_inner``, without the quote marks only)."""
    if keep_inner:
        return QUOTED.sub(lambda m: " " + next(g for g in m.groups() if g is not None) + " ", text)
    return QUOTED.sub(" ", text)


def negated(text: str, start: int) -> bool:
    """Whether a negation word comes before ``start`` in the same clause."""
    clause_start = max((m.end() for m in _CLAUSE.finditer(text, 0, start)), default=0)
    return bool(_NEGATION.search(text, clause_start, start))


def outcome(expected: str) -> Outcome | None:
    """``accept``, ``reject`` or ``None`` (unclear or mixed) for an expected result."""
    found = _votes(strip_quoted(expected))
    if found is None and quoted(expected):
        found = _votes(" ".join(quoted(expected))) or "reject"  # a bare message is an error message
    return found


def mentions(expected: str, words: list[str]) -> bool | None:
    """Whether ``expected`` says one of ``words`` happens (``True``), says it does not (``False``), or neither."""
    text = strip_quoted(expected)
    seen: bool | None = None
    for word in words:
        for m in re.finditer(re.escape(word), text, _I):
            hit = not negated(text, m.start())
            if hit:
                return True
            seen = False
    return seen


def _votes(text: str) -> Outcome | None:
    votes: set[Outcome] = set()
    for m in _WORDS.finditer(text):
        said: Outcome = "reject" if m.group("reject") else "accept"
        if negated(text, m.start()):
            said = "accept" if said == "reject" else "reject"
        votes.add(said)
    return votes.pop() if len(votes) == 1 else None
