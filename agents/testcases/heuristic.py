"""The rule-based generator: test-case drafts without a model, marked ``source: heuristic``.

Used when no LLM answer is usable. It reads each numeric constraint with its polarity
(:mod:`agents.testcases.constraints`) and writes, in the order a capped budget spends them:

1. a boundary case per numeric constraint (min−1, min, max, max+1 with outcomes that follow from the
   constraint, quoting the requirement's message), then a negative case of values far outside;
2. other negative cases (empty, malformed e-mail or phone, forbidden characters, duplicates);
3. one functional path per requirement point, entering a valid value in each field it names;
4. security cases for login, session, permission and payment wording.

A case covers only the points it was built for. Nothing is invented: a number in a case is one of the
requirement's or a boundary derived from it. The result says which asked-for cases the cap left out, and
a consistency check (:mod:`agents.testcases.consistency`) removes any case that contradicts another.
Every case is a draft for review: the rules do not understand the requirement, they read it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from agents.testcases.boundaries import Limit
from agents.testcases.consistency import remove_conflicts
from agents.testcases.constraints import Constraint, find_constraints, merge_across
from agents.testcases.ranges import NEGATIVE_TIER, boundary_case, negative_case, valid_step
from agents.testcases.schemas import (
    CASE_TYPES,
    PRIORITIES,
    CaseDraft,
    CaseType,
    GenerationOptions,
    RequirementPoint,
)
from agents.testcases.wording import words
from agents.testcases.writer import Candidate, Writer, fill, short

_I = re.IGNORECASE
_CORE = re.compile(
    r"必须|不得|不能|禁止|登录|支付|付款|密码|金额|退款|权限|must|shall|cannot|log ?in|sign ?in|password|payment|"
    r"\bpay\b|checkout|refund|permission",
    _I,
)
_MODULES: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(pattern, _I), zh, en)
    for pattern, zh, en in (
        (r"登录|登陆|log ?in|sign ?in", "登录", "Login"),
        (r"注册|sign ?up|regist", "注册", "Sign-up"),
        (r"结算|支付|付款|checkout|payment|\bpay\b", "支付", "Checkout"),
        (r"购物车|\bcart\b", "购物车", "Cart"),
        (r"订单|\border", "订单", "Orders"),
        (r"优惠券|coupon", "优惠券", "Coupons"),
        (r"搜索|search", "搜索", "Search"),
        (r"上传|upload", "上传", "Upload"),
        (r"密码|password", "账号安全", "Account security"),
        (r"用户|账号|账户|\buser|account", "用户", "Users"),
    )
)
# Negative kinds, most specific first: (key, pattern).
_NEGATIVE: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (key, re.compile(pattern, _I))
    for key, pattern in (
        ("email", r"邮箱|e-?mail"),
        ("phone", r"手机|电话|\bphone\b|\bmobile\b"),
        ("charset", r"字母|数字|汉字|中文|英文|特殊字符|大小写|\bletters?\b|\bdigits?\b|alphanumeric|numeric|case"),
        (
            "required",
            r"不能为空|不得为空|不可为空|必填|非空|required|mandatory|cannot be (?:empty|blank)|must not be empty",
        ),
        ("unique", r"唯一|不能重复|不可重复|不得重复|已存在|unique|duplicate|already exists|already registered"),
        (
            "prohibit",
            r"不能|不得|不可|禁止|不允许|只能|仅|cannot|can't|must not|may not|shall not|not allowed|never|only",
        ),
        ("modal", r"必须|应|须|需要|要求|must|should|shall|required"),
    )
)
_NEGATIVE_DATA = {
    "email": "user@@example",
    "phone": "1380013800a",
    "numeric": "abc; -1",
}
_SECURITY: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (key, re.compile(pattern, _I))
    for key, pattern in (
        ("auth", r"登录|登陆|密码|口令|验证码|log ?in|sign ?in|password|credential|\botp\b"),
        ("session", r"token|令牌|会话|session|cookie|jwt|登录态"),
        ("privilege", r"权限|角色|管理员|越权|授权|permission|\broles?\b|admin|authori[sz]|privilege|\bown\b"),
        (
            "payment",
            r"支付|付款|金额|价格|退款|余额|优惠|结算|payment|\bpay\b|price|amount|refund|balance|coupon|checkout",
        ),
    )
)
_SQL = "' OR '1'='1' -- "
_SCRIPT = "<script>alert(1)</script>"


FUNCTIONAL_TIER = 2
SECURITY_TIER = 3


@dataclass(slots=True)
class RuleBasedCases:
    """What the rules wrote, and what they did not: asked-for cases the cap left out, by type, and why."""

    cases: list[CaseDraft]
    dropped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    conflicts_removed: list[str] = field(default_factory=list)


def heuristic_cases(points: list[RequirementPoint], options: GenerationOptions) -> list[CaseDraft]:
    """The rule-based cases for ``points``, most important first, at most ``options.max_cases``."""
    return rule_based_cases(points, options).cases


def rule_based_cases(points: list[RequirementPoint], options: GenerationOptions) -> RuleBasedCases:
    """The rule-based cases with what the cap dropped and notes on what could not be written."""
    if not points:
        return RuleBasedCases(cases=[])
    module = options.module.strip() or infer_module(" ".join(p.text for p in points), options.language)
    writer = Writer(options, module)
    types = set(options.case_types)
    found = {p.id: find_constraints(p.text, options.language) for p in points}
    text_of = {p.id: p.text for p in points}
    candidates: list[Candidate] = []
    for ids, constraint in merge_across([(p.id, c) for p in points for c in found[p.id]]):
        text = text_of[ids[0]]
        core = bool(_CORE.search(text))
        if "boundary" in types and (case := boundary_case(writer, ids, text, constraint)) is not None:
            candidates.append(case)
        if "negative" in types:
            negative = negative_case(writer, ids, text, constraint, "boundary" not in types, core)
            if negative is not None:
                candidates.append(negative)
    negatives_done: set[tuple[str, str]] = set()
    for point in points:
        core = bool(_CORE.search(point.text))
        if "negative" in types:
            candidates.extend(_negative(writer, point, found[point.id], core, negatives_done))
        if "functional" in types:
            candidates.append(_functional(writer, point, found[point.id], core))
    if "security" in types:
        candidates.extend(_security(writer, points, found))
    candidates = _merge_repeats(candidates)
    drafts, removed = remove_conflicts([c.draft for c in candidates])
    alive = {id(d) for d in drafts}
    ranked = sorted((c for c in candidates if id(c.draft) in alive), key=lambda c: (c.tier, c.seq))
    chosen, rest = ranked[: options.max_cases], ranked[options.max_cases :]
    dropped: dict[str, int] = dict(Counter(str(c.draft.type) for c in rest))
    chosen.sort(key=lambda c: (PRIORITIES.index(c.draft.priority), c.seq))
    return RuleBasedCases(
        cases=[c.draft for c in chosen],
        dropped=dropped,
        notes=_notes(options, ranked, dropped),
        conflicts_removed=removed,
    )


def _merge_repeats(candidates: list[Candidate]) -> list[Candidate]:
    """One case for two points that need the very same steps (R1 states a range, R2 its error): it covers both."""
    first: dict[tuple[str, ...], Candidate] = {}
    out: list[Candidate] = []
    for c in candidates:
        key = (c.draft.type, *(f"{s.action}|{s.data}|{s.expected}" for s in c.draft.steps))
        if key in first:
            kept = first[key].draft
            kept.covers = list(dict.fromkeys([*kept.covers, *c.draft.covers]))
            continue
        first[key] = c
        out.append(c)
    return out


def infer_module(text: str, language: str) -> str:
    """A short module name from the feature words in ``text`` (login, checkout, …)."""
    for pattern, zh, en in _MODULES:
        if pattern.search(text):
            return zh if language == "zh" else en
    return words(language)["general"]


def _notes(options: GenerationOptions, ranked: list[Candidate], dropped: dict[str, int]) -> list[str]:
    w = words(options.language)
    notes = [w["draft_label"]]
    if dropped:
        types = ", ".join(f"{t}: {n}" for t, n in sorted(dropped.items()))
        count = str(sum(dropped.values()))
        notes.append(fill(w["note_dropped"], {"cap": str(options.max_cases), "count": count, "types": types}))
    written = {c.draft.type for c in ranked}
    for type_ in CASE_TYPES:
        if type_ in options.case_types and type_ not in written:
            notes.append(fill(w["note_missing"], {"type": type_, "why": w[f"why_{type_}"]}))
    return notes


def _functional(wr: Writer, point: RequirementPoint, found: list[Constraint], core: bool) -> Candidate:
    w = wr.w
    steps = [step for c in found if (step := valid_step(wr, c)) is not None]
    if steps:
        # Restating a sentence with numbers ("超过 99 件时提示…") as an expected result would claim an outcome
        # for 99; the value steps above already say what happens.
        steps += [(w["func_submit"], "", w["func_submitted"])]
    else:
        steps += [(w["func_prepare_none"], "", w["func_prepared"]), (w["func_do"], "", w["func_done"])]
    steps.append((w["func_check"], "", w["func_checked"]))
    title = fill(w["func_title"], {"short": short(point.text)})
    return wr.case(FUNCTIONAL_TIER, 0 if core else 1, "functional", title, [point.id], steps, point=point.text)


def _negative(
    wr: Writer, point: RequirementPoint, found: list[Constraint], core: bool, done: set[tuple[str, str]]
) -> Iterator[Candidate]:
    """A negative case for a stated non-numeric rule (numeric ones have their own, see ``ranges``).

    ``done`` holds the (kind, field) pairs written already: a malformed phone number is tested once.
    """
    kind = next((key for key, pattern in _NEGATIVE if pattern.search(point.text)), None)
    if kind is None or (kind in ("prohibit", "modal") and any(c.kind == "validation" for c in found)):
        return
    field_name = next((c.field for c in found if c.kind == "validation"), "")
    key = (kind, "" if kind in ("email", "phone") else field_name)
    if key in done:
        return
    done.add(key)
    w = wr.w
    label, action = w[f"neg_{kind}"].split("|", 1)
    if field_name:
        action = fill(w["in_field"], {"field": field_name, "action": action})
    limits = [c.limit for c in found]
    data = {"charset": _bad_chars(limits), "unique": w["unique_data"]}.get(kind, _NEGATIVE_DATA.get(kind, ""))
    steps = [(action, data, w["neg_rejected"]), (w["neg_check"], "", w["neg_checked"])]
    title = w["neg_title"].format(short=short(point.text), label=label)
    yield wr.case(NEGATIVE_TIER, 1 if core else 2, "negative", title, [point.id], steps, point=point.text)


def _security(wr: Writer, points: list[RequirementPoint], found: dict[str, list[Constraint]]) -> Iterator[Candidate]:
    """Security cases, each covering the one point it is built for (not every point that shares a word)."""
    w = wr.w
    hits = {key: [p for p in points if pattern.search(p.text)] for key, pattern in _SECURITY}
    if hits["auth"]:
        lockouts = [(p, c.limit) for p in hits["auth"] for c in found[p.id] if c.kind == "threshold"]
        target = lockouts[0][0] if lockouts else hits["auth"][0]
        if lockouts and lockouts[0][1].hi is not None:
            n = lockouts[0][1].fmt(lockouts[0][1].hi)
            first = (w["brute_1"], w["brute_1_data"], w["brute_1_expected"])
        else:
            n = ""
            first = (w["brute_1_any"], w["brute_1_data"], w["brute_1_expected_any"])
        steps = [first, (w["brute_2"], "", w["brute_2_expected"]), (w["brute_3"], "", w["brute_3_expected"])]
        yield wr.case(SECURITY_TIER, 0, "security", w["brute_title"], [target.id], steps, n=n)
        yield _injection(wr, [hits["auth"][0].id])
    simple = {"session": "session", "privilege": "priv", "payment": "pay"}
    for key, prefix in simple.items():
        if hits[key]:
            steps = [
                (w[f"{prefix}_1"], w[f"{prefix}_1_data"], w[f"{prefix}_1_expected"]),
                (w[f"{prefix}_2"], "", w[f"{prefix}_2_expected"]),
            ]
            yield wr.case(SECURITY_TIER, 0, "security", w[f"{prefix}_title"], [hits[key][0].id], steps)


def _injection(wr: Writer, covers: list[str]) -> Candidate:
    w = wr.w
    steps = [(w["inject_1"], _SQL, w["inject_1_expected"]), (w["inject_2"], _SCRIPT, w["inject_2_expected"])]
    return wr.case(SECURITY_TIER, 0, "security", w["inject_title"], covers, steps)


def _bad_chars(limits: list[Limit]) -> str:
    return "ab#" if any(lim.digits_only for lim in limits) else "ab@#$%!"


__all__ = ["CaseType", "RuleBasedCases", "heuristic_cases", "infer_module", "rule_based_cases"]
