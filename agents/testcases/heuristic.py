"""The rule-based baseline: test cases without a model.

Used when no LLM answer is usable. Per requirement point it writes a positive functional case,
boundary cases from the numbers, ranges and lengths in the text (min-1, min, min+1, max-1, max,
max+1 with concrete values), a negative case for a stated constraint, and — across points — security
cases for login, session, permission and payment wording. Options decide the types, priorities,
language and the cap; every point gets a case before any point gets a second one.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from agents.testcases.boundaries import Limit, find_limits
from agents.testcases.schemas import (
    PRIORITIES,
    CaseDraft,
    CaseType,
    GenerationOptions,
    Priority,
    RequirementPoint,
    Step,
)
from agents.testcases.wording import Words, words

_I = re.IGNORECASE
_CORE = re.compile(
    r"必须|不得|不能|禁止|登录|支付|付款|密码|金额|退款|权限|must|shall|cannot|log ?in|sign ?in|password|payment|"
    r"\bpay\b|checkout|refund|permission",
    _I,
)
_CONSTRAINT = re.compile(
    r"必须|应|须|需要|不能|不得|不可|只能|仅|至少|最多|不超过|不少于|不低于|不高于|之间|以内|范围|"
    r"must|should|shall|cannot|can't|only|at least|at most|up to|within|no more than|no less than|between|"
    r"limit|range|allowed|required",
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


@dataclass(slots=True)
class _Candidate:
    level: int  # 0 = most important; mapped onto the allowed priorities
    seq: int
    draft: CaseDraft


class _Writer:
    def __init__(self, options: GenerationOptions, module: str) -> None:
        self.w: Words = words(options.language)
        self.lang = options.language
        self.module = module
        self.allowed: list[Priority] = sorted(set(options.priorities), key=PRIORITIES.index)
        self.seq = itertools.count()

    def case(
        self, level: int, type_: CaseType, title: str, covers: list[str], steps: list[tuple[str, str, str]], **fmt: str
    ) -> _Candidate:
        w, module = self.w, self.module
        pre = [w["pre_system"].format(module=module), w["pre_data"]]
        if type_ != "security" and _SECURITY[0][1].search(" ".join([title, *(s[0] for s in steps)])):
            pre.append(w["pre_account"])
        draft = CaseDraft(
            title=_clip(title, 200),
            module=module,
            preconditions=pre,
            steps=[
                Step(step=i, action=_fill(a, fmt), data=d, expected=_fill(e, fmt))
                for i, (a, d, e) in enumerate(steps, start=1)
            ],
            priority=self.allowed[min(level, len(self.allowed) - 1)],
            type=type_,
            covers=covers,
        )
        return _Candidate(level, next(self.seq), draft)


def heuristic_cases(points: list[RequirementPoint], options: GenerationOptions) -> list[CaseDraft]:
    """A baseline set of cases for ``points``, most important first, at most ``options.max_cases``."""
    if not points:
        return []
    module = options.module.strip() or infer_module(" ".join(p.text for p in points), options.language)
    writer = _Writer(options, module)
    types = set(options.case_types)
    candidates: list[_Candidate] = []
    for point in points:
        limits = find_limits(point.text)
        core = bool(_CORE.search(point.text))
        if "functional" in types:
            candidates.append(_functional(writer, point, limits, core))
        if "boundary" in types:
            candidates.extend(_boundary(writer, point, limits))
        if "negative" in types:
            candidates.extend(_negative(writer, point, limits, core))
    if "security" in types:
        candidates.extend(_security(writer, points))
    covered = {pid for c in candidates for pid in c.draft.covers}
    first_type = next(t for t in ("functional", "boundary", "negative", "security") if t in types)
    for point in points:
        if point.id not in covered:
            candidates.append(_generic(writer, point, first_type))
    return _select(candidates, points, options.max_cases)


def infer_module(text: str, language: str) -> str:
    """A short module name from the feature words in ``text`` (login, checkout, …)."""
    for pattern, zh, en in _MODULES:
        if pattern.search(text):
            return zh if language == "zh" else en
    return words(language)["general"]


def _select(candidates: list[_Candidate], points: list[RequirementPoint], cap: int) -> list[CaseDraft]:
    def rank(c: _Candidate) -> tuple[int, int]:
        return PRIORITIES.index(c.draft.priority), c.seq

    ranked = sorted(candidates, key=rank)
    chosen: dict[int, _Candidate] = {}
    for point in points:  # coverage first: the best case of every point
        if len(chosen) >= cap:
            break
        if any(point.id in c.draft.covers for c in chosen.values()):
            continue
        best = next((c for c in ranked if point.id in c.draft.covers), None)
        if best is not None:
            chosen[best.seq] = best
    for candidate in ranked:
        if len(chosen) >= cap:
            break
        chosen.setdefault(candidate.seq, candidate)
    return [c.draft for c in sorted(chosen.values(), key=rank)]


def _functional(wr: _Writer, point: RequirementPoint, limits: list[Limit], core: bool) -> _Candidate:
    w = wr.w
    valid = [lim.render(_valid_value(lim), wr.lang) for lim in limits if not lim.threshold]
    data = ("；" if wr.lang == "zh" else "; ").join(valid)
    steps = [
        (w["func_prepare"] if data else w["func_prepare_none"], data, w["func_prepared"]),
        (w["func_do"], "", w["func_done"]),
        (w["func_check"], "", w["func_checked"]),
    ]
    title = w["func_title"].format(short=_short(point.text))
    return wr.case(0 if core else 1, "functional", title, [point.id], steps, point=point.text)


def _boundary(wr: _Writer, point: RequirementPoint, limits: list[Limit]) -> Iterator[_Candidate]:
    w, short = wr.w, _short(point.text)
    constraint = bool(_CONSTRAINT.search(point.text))
    for lim in limits:
        # A stated limit is validated (out of range is rejected); "orders over $100 ship free" is a condition.
        validation = constraint or lim.quantity == "length"
        if lim.threshold:
            values = [v for v in (lim.hi - lim.step, lim.hi, lim.hi + lim.step) if v >= 0] if lim.hi is not None else []
            yield _threshold_case(wr, point, lim, values)
            continue
        groups: list[tuple[str, list[Decimal]]] = []
        if lim.exact and lim.lo is not None:
            groups.append(("exact_title", [lim.lo - lim.step, lim.lo, lim.lo + lim.step]))
        else:
            if lim.lo is not None:
                groups.append(("lower_title", [lim.lo - lim.step, lim.lo, lim.lo + lim.step]))
            if lim.hi is not None:
                groups.append(("upper_title", [lim.hi - lim.step, lim.hi, lim.hi + lim.step]))
        for title_key, raw in groups:
            values = list(dict.fromkeys(v for v in raw if lim.quantity not in ("length", "count") or v >= 0))
            steps = []
            for v in values:
                shown = lim.render(v, wr.lang)
                label = _fill(w["length_label"], {"n": lim.fmt(v)}) if lim.quantity == "length" else shown
                action = {"length": w["set_length"], "time": w["set_time"]}.get(lim.quantity, w["set_value"])
                outcome = ("valid", "invalid") if validation else ("meets", "misses")
                expected = w[outcome[0] if _inside(lim, v) else outcome[1]]
                steps.append(
                    (
                        _fill(action, {"v": lim.fmt(v) if lim.quantity == "length" else shown}),
                        shown,
                        _fill(expected, {"v": label}),
                    )
                )
            title = w[title_key].format(short=short, values="/".join(lim.fmt(v) for v in values))
            yield wr.case(1, "boundary", title, [point.id], steps, point=point.text)


def _threshold_case(wr: _Writer, point: RequirementPoint, lim: Limit, values: list[Decimal]) -> _Candidate:
    w = wr.w
    prefix = "time" if lim.quantity == "time" else "count"
    n = lim.render(lim.hi, wr.lang) if lim.hi is not None else ""
    steps = []
    for v in values:
        position = "below" if lim.hi is not None and v < lim.hi else "at" if v == lim.hi else "above"
        shown = lim.render(v, wr.lang)
        steps.append((_fill(w[f"{prefix}_do"], {"v": shown}), shown, w[f"{prefix}_{position}"]))
    title = w["threshold_title"].format(short=_short(point.text), values="/".join(lim.fmt(v) for v in values))
    return wr.case(1, "boundary", title, [point.id], steps, n=n, point=point.text)


def _negative(wr: _Writer, point: RequirementPoint, limits: list[Limit], core: bool) -> Iterator[_Candidate]:
    kind = next((key for key, pattern in _NEGATIVE if pattern.search(point.text)), None)
    validated = [lim for lim in limits if not lim.threshold]
    if kind in (None, "prohibit", "modal") and validated:
        quantity = validated[0].quantity
        if quantity == "length":
            kind = "required"
        elif quantity in ("number", "money", "percent") and _CONSTRAINT.search(point.text):
            kind = "numeric"
    if kind is None:
        return
    w = wr.w
    label, action = w[f"neg_{kind}"].split("|", 1)
    data = {"charset": _bad_chars(validated), "unique": w["unique_data"]}.get(kind, _NEGATIVE_DATA.get(kind, ""))
    steps = [(action, data, w["neg_rejected"]), (w["neg_check"], "", w["neg_checked"])]
    title = w["neg_title"].format(short=_short(point.text), label=label)
    yield wr.case(1 if core else 2, "negative", title, [point.id], steps, point=point.text)


def _security(wr: _Writer, points: list[RequirementPoint]) -> Iterator[_Candidate]:
    w = wr.w
    hits = {key: [p for p in points if pattern.search(p.text)] for key, pattern in _SECURITY}
    if hits["auth"]:
        covers = [p.id for p in hits["auth"]]
        counts = [lim.hi for p in hits["auth"] for lim in find_limits(p.text) if lim.quantity == "count" and lim.hi]
        n = str(int(counts[0])) if counts else "10"
        steps = [
            (w["brute_1"], w["brute_1_data"], w["brute_1_expected"]),
            (w["brute_2"], "", w["brute_2_expected"]),
            (w["brute_3"], "", w["brute_3_expected"]),
        ]
        yield wr.case(0, "security", w["brute_title"], covers, steps, n=n)
        yield _injection(wr, covers)
    simple = {"session": "session", "privilege": "priv", "payment": "pay"}
    for key, prefix in simple.items():
        if hits[key]:
            steps = [
                (w[f"{prefix}_1"], w[f"{prefix}_1_data"], w[f"{prefix}_1_expected"]),
                (w[f"{prefix}_2"], "", w[f"{prefix}_2_expected"]),
            ]
            yield wr.case(0, "security", w[f"{prefix}_title"], [p.id for p in hits[key]], steps)


def _injection(wr: _Writer, covers: list[str]) -> _Candidate:
    w = wr.w
    steps = [(w["inject_1"], _SQL, w["inject_1_expected"]), (w["inject_2"], _SCRIPT, w["inject_2_expected"])]
    return wr.case(0, "security", w["inject_title"], covers, steps)


def _generic(wr: _Writer, point: RequirementPoint, type_: CaseType) -> _Candidate:
    """A case for a point none of the rules matched, of the first requested type."""
    w = wr.w
    if type_ == "functional":
        return _functional(wr, point, [], bool(_CORE.search(point.text)))
    if type_ == "security":
        return _injection(wr, [point.id])
    if type_ == "boundary":
        steps = [
            (w["generic_empty"], "", w["neg_rejected"]),
            (w["generic_long"], "A" * 256, w["generic_long_expected"]),
        ]
        title = w["generic_bnd_title"].format(short=_short(point.text))
        return wr.case(1, "boundary", title, [point.id], steps)
    label, action = w["neg_modal"].split("|", 1)
    steps = [(action, "", w["neg_rejected"]), (w["neg_check"], "", w["neg_checked"])]
    title = w["neg_title"].format(short=_short(point.text), label=label)
    return wr.case(2, "negative", title, [point.id], steps, point=point.text)


def _fill(template: str, values: dict[str, str]) -> str:
    # str.replace, not str.format: the requirement text may hold braces of its own.
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


def _valid_value(lim: Limit) -> Decimal:
    if lim.lo is not None and lim.hi is not None:
        middle = (lim.lo + lim.hi) / 2
        return middle.quantize(lim.step) if lim.step < 1 else middle.to_integral_value()
    if lim.lo is not None:
        return lim.lo + lim.step
    assert lim.hi is not None
    return max(lim.hi - lim.step, Decimal(1) if lim.quantity == "length" else Decimal(0))


def _inside(lim: Limit, value: Decimal) -> bool:
    return (lim.lo is None or value >= lim.lo) and (lim.hi is None or value <= lim.hi)


def _bad_chars(limits: list[Limit]) -> str:
    return "12ab#" if any(lim.digits_only for lim in limits) else "ab@#$%!"


def _short(text: str, size: int = 40) -> str:
    return _clip(text, size)


def _clip(text: str, size: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= size else text[: size - 1].rstrip() + "…"
