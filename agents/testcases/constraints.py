"""The numeric constraints of a requirement point, read with their polarity.

A number in a requirement says one of four things, and the expected outcome of a test value follows from which:

- **validation, allowed**: "用户名长度为 3-20 位", "at most 99 items": values inside are accepted, outside refused;
- **validation, error condition**: "长度小于 3 位或大于 20 位时提示…", "more than 99 items shows …": the numbers
  describe what is refused, so the allowed range is their complement (3..20, at most 99);
- **condition**: "满 100 元可使用优惠券", "orders of $50 or more ship free": a rule applies inside, not outside;
- **threshold**: "连续输错 5 次锁定", "after 5 failed attempts": the effect happens at the count, not before;
- **timing**: durations ("有效期 5 分钟", "within 30 minutes") get "still inside" and "after" checks only,
  since the text rarely says which side the exact minute belongs to.

The field is the words before the number ("用户名", "The cart"), and the message is the text the sentence
quotes ("提示“用户名长度需为 3-20 位”"); both go into the cases verbatim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from agents.testcases.boundaries import Bound, Limit, find_bounds
from agents.testcases.reading import QUOTED

Kind = Literal["validation", "condition", "threshold", "timing"]

_I = re.IGNORECASE
_SENTENCE_END = re.compile(r"[。；;!！?？]|\.(?=\s|$)")
_CLAUSE_START = re.compile(r"[，,；;：:。]")
_CONSTRAINT = re.compile(
    r"必须|应|须|需要|不能|不得|不可|只能|仅|至少|最多|不超过|不少于|不低于|不高于|之间|以内|范围|"
    r"must|should|shall|cannot|can't|only|at least|at most|up to|within|no more than|no less than|between|"
    r"limit|range|allowed|required|can hold|can list|may save|can upload|can request|no larger",
    _I,
)
_ERROR = re.compile(
    r"提示|报错|错误|失败|拒绝|不允许|无法|不能|不可|禁止|置灰|"
    r"\bshows?\b|\bdisplays?\b|\berror\b|\breject|not allowed|\bcannot\b|\bfails?\b|\bblock|\bwarn",
    _I,
)
_LIMIT_WORDS = re.compile(
    r"最多|至多|不超过|不多于|不高于|不大于|上限为?|最大为?|最长为?|最高为?|(?:不能|不得|不可|不应)超过|仅限|只能|"
    r"至少|最少|不少于|不低于|不小于|最低为?|最短为?|不满|未满|不足|满|为|是"
)
_ZH_EDGE = re.compile(
    r"^(?:如果|若|当|对于|在|且|或|并且|和|及)+|(?:的|为|是|必须|应该|应当|应|需要|须|需|要|在|可以|可|都|均)+$"
)
_EN_LEAD = re.compile(r"^(?:(?:if|when|once|after|whenever|and|or|but|otherwise)(?:\s+|$))+", _I)
_EN_TAIL = re.compile(
    r"(?:\s+(?:must|should|shall|can|cannot|can't|may|will|be|is|are|have|has|hold|list|contain|request|upload|"
    r"save|get|not|of|to|than|no|at|up))+$",
    _I,
)
_EN_STOP = frozenset(
    [
        "and",
        "or",
        "but",
        "show",
        "shows",
        "is",
        "are",
        "get",
        "gets",
        "must",
        "can",
        "may",
        "will",
        "the",
        "a",
        "an",
        "to",
        "otherwise",
    ]
)
_SIZE_UNITS = frozenset({"kb", "mb", "gb", "tb"})
_ZH_NOUN = re.compile(r"^\s*([\u4e00-\u9fff]{1,8})")
_EFFECT_LEAD = re.compile(r"^[\s，,]*(?:之后|以后|后|时|则|即|将|就|then\b|,)?[\s，,]*", _I)
_MESSAGE_CUE = re.compile(
    r"[，,]?\s*(?:并|同时|and)?\s*(?:页面|系统|the page|the app)?\s*(?:提示|显示|shows?|displays?)\s*[:：]?\s*$", _I
)
_DEFAULT_FIELD = {
    "zh": {"length": "输入", "money": "金额", "percent": "比例", "time": "时间"},
    "en": {"length": "the input", "money": "the amount", "percent": "the rate", "time": "the time"},
}


@dataclass(frozen=True, slots=True)
class Constraint:
    kind: Kind
    limit: Limit  # validation/condition: the values allowed or meeting it; threshold/timing: lo == hi == N
    field: str
    polarity: Literal["allowed", "error", "condition", "threshold", "timing"]
    message: str | None = None  # validation: shown for a refused value; threshold: shown when it triggers
    effect: str = ""  # condition/threshold: what happens
    action: str = ""  # threshold: the words before the count ("连续输错密码")

    def key(self) -> tuple[object, ...]:
        """Two constraints with the same key say the same thing (possibly in two sentences)."""
        lim = self.limit
        return self.kind, _norm_field(self.field), lim.quantity, lim.lo, lim.hi


def find_constraints(text: str, language: str) -> list[Constraint]:
    """The numeric constraints of one requirement point, merged where two bounds describe one range."""
    masked = QUOTED.sub(lambda m: " " * len(m.group(0)), text)
    found: list[Constraint] = []
    sentence_of: list[int] = []
    thresholds: set[int] = set()
    previous_end = 0
    for bound in find_bounds(masked):
        start, end = _sentence(masked, bound)
        sentence = start
        clause = max((m.end() for m in _CLAUSE_START.finditer(masked, start, bound.start)), default=start)
        before = masked[max(clause, previous_end) : bound.start]
        previous_end = bound.end
        after = masked[bound.end : end]
        quoted_here = [next(g for g in m.groups() if g is not None) for m in QUOTED.finditer(text, start, end)]
        message = quoted_here[0] if quoted_here else None
        lim = bound.limit
        if lim.quantity == "time" or (bound.kind == "bare" and lim.quantity != "length"):
            if sentence in thresholds:
                continue  # "锁定 30 分钟" after "输错 5 次" is the effect, not a second rule
            thresholds.add(sentence)
            kind: Kind = "timing" if lim.quantity == "time" else "threshold"
            effect = _effect(text, bound, end, before)
            field = _field(before, masked, bound, language)
            found.append(
                Constraint(kind, lim, field, kind, message, effect, action=before.strip())  # type: ignore[arg-type]
            )
            sentence_of.append(sentence)
            continue
        refused = bool(_ERROR.search(after))
        field = _field(before, masked, bound, language) or (
            found[-1].field if found and sentence_of[-1] == sentence else ""
        )
        if bound.kind in ("lt", "gt") and refused:
            found.append(Constraint("validation", _complement(lim), field, "error", message))
        elif _CONSTRAINT.search(text) or lim.quantity == "length" or refused or _stated_range(bound):
            found.append(Constraint("validation", lim, field, "allowed", message if refused else None))
        else:
            found.append(Constraint("condition", lim, field, "condition", None, _effect(text, bound, end, before)))
        sentence_of.append(sentence)
    default = _DEFAULT_FIELD["zh" if language == "zh" else "en"]
    named = [c if c.field else replace(c, field=default.get(c.limit.quantity, default["length"])) for c in found]
    return _merge(named)


def merge_across(constraints: list[tuple[str, Constraint]]) -> list[tuple[list[str], Constraint]]:
    """Constraints of several points that say the same thing, once, with every point they come from."""
    merged: dict[tuple[object, ...], tuple[list[str], Constraint]] = {}
    for point_id, constraint in constraints:
        key = constraint.key()
        if key in merged:
            ids, kept = merged[key]
            if point_id not in ids:
                ids.append(point_id)
            if kept.message is None and constraint.message is not None:
                merged[key] = (ids, replace(kept, message=constraint.message))
        else:
            merged[key] = ([point_id], constraint)
    return list(merged.values())


def _stated_range(bound: Bound) -> bool:
    # "数量为 1-99 件" states what is valid; a money range ("orders of $50-$100 get …") is usually a condition.
    return bound.kind == "range" and bound.limit.quantity != "money"


def _sentence(text: str, bound: Bound) -> tuple[int, int]:
    start = max((m.end() for m in _SENTENCE_END.finditer(text, 0, bound.start)), default=0)
    after = _SENTENCE_END.search(text, bound.end)
    return start, after.start() if after else len(text)


def _complement(lim: Limit) -> Limit:
    """The allowed values when ``lim`` describes the refused ones ("小于 3" → at least 3)."""
    if lim.hi is not None and lim.lo is None:
        return replace(lim, lo=lim.hi + lim.step, hi=None)
    if lim.lo is not None and lim.hi is None:
        return replace(lim, lo=None, hi=lim.lo - lim.step)
    return lim


def _field(before: str, masked: str, bound: Bound, language: str) -> str:
    inner = masked[bound.start : bound.end]
    if language == "zh":
        lead = re.split(r"[$¥￥\d]", inner, maxsplit=1)[0]
        verb = _LIMIT_WORDS.sub("", re.sub(r"[^\u4e00-\u9fff]", "", lead))
        base = _ZH_EDGE.sub("", before.strip())
        if bound.limit.quantity == "length":
            base = re.sub(r"(?:长度|的长度)$", "", _ZH_EDGE.sub("", base))
            return base
        noun = _ZH_NOUN.match(masked[bound.end :])
        tail = noun.group(1) if noun and bound.limit.quantity == "count" and verb else ""
        return _ZH_EDGE.sub("", base + verb + tail)
    base = _EN_TAIL.sub("", _EN_LEAD.sub("", before.strip())).strip()
    unit = bound.limit.unit if bound.limit.quantity == "count" else ""
    if bound.limit.quantity in ("count", "number") and unit.lower() not in _SIZE_UNITS:
        phrase = " ".join(p for p in (unit, _noun_after(masked[bound.end :])) if p)
        if phrase:
            return phrase
    return base


def _noun_after(text: str) -> str:
    """The few words naming what is counted: "files per message" in "10 files per message, and …"."""
    words: list[str] = []
    for word in re.split(r"\s+", re.split(r"[,.;:!?]", text.strip(), maxsplit=1)[0]):
        if not word or word.lower() in _EN_STOP or len(words) == 4:
            break
        words.append(word)
    return " ".join(words) if words and words[0].lower() not in ("or", "per") else ""


def _effect(text: str, bound: Bound, end: int, before: str) -> str:
    """What happens at the threshold: the rest of the sentence without its message, else what came before."""
    rest = _EFFECT_LEAD.sub("", text[bound.end : end], count=1)
    first_quote = QUOTED.search(rest)
    if first_quote:
        rest = _MESSAGE_CUE.sub("", rest[: first_quote.start()])
    rest = rest.strip(" ，,。.")
    return rest or _EN_LEAD.sub("", before.strip()).strip(" ，,")


def _merge(found: list[Constraint]) -> list[Constraint]:
    """One range from a minimum and a maximum of the same field; one constraint per key."""
    out: list[Constraint] = []
    for c in found:
        partner = next(
            (
                i
                for i, o in enumerate(out)
                if o.kind == c.kind == "validation"
                and _norm_field(o.field) == _norm_field(c.field)
                and _halves(o.limit, c.limit)
            ),
            None,
        )
        if partner is not None:
            o = out[partner]
            lo = o.limit.lo if o.limit.lo is not None else c.limit.lo
            hi = o.limit.hi if o.limit.hi is not None else c.limit.hi
            base = o.limit if o.limit.quantity != "number" else c.limit
            out[partner] = replace(o, limit=replace(base, lo=lo, hi=hi), message=o.message or c.message)
            continue
        same = next((i for i, o in enumerate(out) if _same_values(o, c)), None)
        if same is not None:
            o = out[same]
            keep = c if (c.kind == "validation" and o.kind != "validation") else o
            out[same] = replace(keep, message=o.message or c.message)
            continue
        out.append(c)
    return out


def _halves(a: Limit, b: Limit) -> bool:
    one_side = (a.lo is None) != (a.hi is None) and (b.lo is None) != (b.hi is None)
    return (
        one_side
        and (a.lo is None) != (b.lo is None)
        and (a.quantity == b.quantity or "number" in (a.quantity, b.quantity))
    )


def _same_values(a: Constraint, b: Constraint) -> bool:
    return (a.limit.lo, a.limit.hi, a.limit.quantity) == (b.limit.lo, b.limit.hi, b.limit.quantity) and (
        {a.kind, b.kind} <= {"validation", "condition"}
    )


def _norm_field(field: str) -> str:
    return re.sub(r"^(?:the|a|an|each|every)\s+|\W+", "", field.lower())


def value_inside(lim: Limit, value: Decimal) -> bool:
    return (lim.lo is None or value >= lim.lo) and (lim.hi is None or value <= lim.hi)
