"""Numbers, ranges and limits in a requirement sentence, for boundary-value cases.

``8 到 20 位`` is a length range, ``at most 5 attempts`` a maximum count, ``不超过100元`` a maximum
amount (stepped by 0.01), ``连续输错 5 次`` a threshold. Bounds are inclusive valid values:
``more than 100`` becomes a minimum of 100 + step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

Quantity = Literal["length", "count", "time", "money", "percent", "number"]

_NUM = (
    r"(?<![A-Za-z0-9_.])(?P<cur{i}>[$¥￥])?\s?"
    r"(?P<n{i}>\d{{1,3}}(?:,\d{{3}}){{1,3}}(?:\.\d{{1,6}})?|\d{{1,12}}(?:\.\d{{1,6}})?)(?![\d,.]\d)"
)
_UNIT = (
    r"\s*(?P<u{i}>个字符|个汉字|个字|字符|位数|位|字(?![母段体号])|个月|分钟|秒钟|毫秒|小时|秒|天|周|月|年|次|个|件|张|条|人|项|岁|"
    r"元|块|美元|%|％|"
    r"(?:(?:failed|wrong|incorrect|invalid|unsuccessful|consecutive|login|sign-in|password)\s+){{0,3}}"
    r"(?:characters?|chars?|digits?|letters?|percent|times|attempts?|tries|items?|requests?|orders?|products?|"
    r"users?|milliseconds?|ms|seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?|yuan|rmb|cny|"
    r"usd|dollars?|[KMGT]B|s|h)(?![A-Za-z]))?"
)
_LENGTH = {"个字符", "个汉字", "个字", "字符", "位数", "位", "字", "character", "char", "digit", "letter"}
_TIME = {"个月", "分钟", "秒钟", "毫秒", "小时", "秒", "天", "周", "月", "年", "millisecond", "ms", "second", "sec"}
_TIME |= {"minute", "min", "hour", "hr", "day", "week", "month", "year", "s", "h"}
_MONEY = {"元", "块", "美元", "yuan", "rmb", "cny", "usd", "dollar", "$", "¥", "￥"}
_PERCENT = {"%", "％", "percent"}


def _num(i: int) -> str:
    return _NUM.format(i=i) + _UNIT.format(i=i)


_FLAGS = re.IGNORECASE
_RANGES = [
    re.compile(rf"(?<![A-Za-z])between\s+{_num(1)}\s+and\s+{_num(2)}", _FLAGS),
    re.compile(rf"(?<![A-Za-z])from\s+{_num(1)}\s+to\s+{_num(2)}", _FLAGS),
    re.compile(rf"{_num(1)}\s*(?:-|–|—|~|～|到|至|to)\s*{_num(2)}", _FLAGS),
]
_MAX_WORDS = (
    r"at most|up to|no more than|not more than|no greater than|not greater than|a maximum of|maximum(?: of)?|"
    r"max\.?|no larger than|not larger than|no bigger than|"
    r"(?:cannot|can't|must not|may not|should not|shall not|does not|do not|not to|never) exceed|within|"
    r"最多|至多|不超过|不多于|不高于|不大于|小于等于|≤|<=|上限为?|最大为?|最长为?|最高为?|(?:不能|不得|不可|不应)超过|仅限|只能"
)
_MIN_WORDS = (
    r"at least|a minimum of|minimum(?: of)?|min\.?|no less than|not less than|no fewer than|not fewer than|"
    r"不少于|不低于|不小于|至少|最少|最低为?|最短为?|大于等于|(?<![不未])满|≥|>="
)
_GT_WORDS = (
    r"more than|greater than|longer than|larger than|bigger than|exceeds?|exceeding|over|above|"
    r"(?<!不)大于|(?<!不)超过|(?<!不)高于|(?<!不能)(?<!不得)超出|>"
)
_LT_WORDS = (
    r"less than|fewer than|shorter than|smaller than|below|under|不满|未满|不足|(?<!不)小于|(?<!不)少于|(?<!不)低于|<"
)
# "最多领取 3 张", "不超过订单金额的 50%": a few CJK words may stand between the limit word and its number.
_VERB = r"(?:[\u4e00-\u9fff]{1,6}?\s*)?"
_BOUNDS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"(?<![A-Za-z])(?:{_MAX_WORDS})\s*(?:为|是)?\s*{_VERB}{_num(1)}", _FLAGS), "max"),
    (
        re.compile(rf"{_num(1)}\s*(?:or less|or fewer|or below|and below|以内|之内|或以下|及以下|以下|内)", _FLAGS),
        "max",
    ),
    (re.compile(rf"(?<![A-Za-z])(?:{_MIN_WORDS})\s*(?:为|是)?\s*{_VERB}{_num(1)}", _FLAGS), "min"),
    (re.compile(rf"{_num(1)}\s*(?:or more|or above|and above|or older|or over|及以上|或以上|以上)", _FLAGS), "min"),
    (re.compile(rf"(?<![A-Za-z])(?:{_LT_WORDS})\s*{_num(1)}", _FLAGS), "lt"),
    (re.compile(rf"(?<![A-Za-z])(?:{_GT_WORDS})\s*{_num(1)}", _FLAGS), "gt"),
]
_BARE = re.compile(_num(1), _FLAGS)
_DIGITS_ONLY = re.compile(r"数字(?!或|和|与|、|及)|\bdigits?\b|numeric|验证码|手机|\bphone\b|\bpin\b|\bcode\b", _FLAGS)
_EXAMPLE = re.compile(r"(?:\be\.g\.|\bfor example\b|\bsuch as\b|例如|比如)[^;；。]*", re.IGNORECASE)
_LETTERS = re.compile(r"字母|英文|letters?|alphanumeric|alphabet", _FLAGS)


@dataclass(frozen=True, slots=True)
class Limit:
    """Valid values run from ``lo`` to ``hi`` (either may be open); a threshold has ``lo == hi``."""

    lo: Decimal | None
    hi: Decimal | None
    quantity: Quantity
    unit: str
    step: Decimal
    threshold: bool = False
    currency_prefix: bool = False
    digits_only: bool = False

    @property
    def exact(self) -> bool:
        return not self.threshold and self.lo is not None and self.lo == self.hi

    def fmt(self, value: Decimal) -> str:
        """The bare number, at the limit's precision (``100.01``, ``7``)."""
        return format(value.quantize(self.step) if self.step < 1 else value.to_integral_value(), "f")

    def render(self, value: Decimal, language: str) -> str:
        """The value as test data: a string of that length, ``$100.01``, ``7 次``, ``5%``."""
        number = self.fmt(value)
        if self.quantity == "length":
            n = int(value)
            if n <= 0:
                return "空字符串（0 位）" if language == "zh" else "empty string (0 characters)"
            return (
                f"“{sample_string(n, self.digits_only)}”（{n} 位）"
                if language == "zh"
                else (f'"{sample_string(n, self.digits_only)}" ({n} characters)')
            )
        if self.currency_prefix:
            return f"{self.unit}{number}"
        if self.quantity == "percent":
            return f"{number}%"
        return f"{number} {self.unit}".strip() if re.match(r"[A-Za-z]", self.unit) else f"{number}{self.unit}"


def sample_string(length: int, digits_only: bool = False) -> str:
    """A concrete value of ``length`` characters; long ones are described rather than written out."""
    base = "1234567890" if digits_only else "Abcd1234"
    if length > 40:
        return f"{base[:8]}…（共 {length} 个字符）" if not digits_only else f"{'1' * 8}…（{length} digits）"
    return (base * (length // len(base) + 1))[:length]


@dataclass(frozen=True, slots=True)
class Bound:
    """A limit as written: where it stands in the text and how it is phrased.

    ``kind`` is ``range`` (``3-20 位``), ``max``/``min`` (inclusive words: 最多, at least), ``lt``/``gt``
    (strict words: 小于, more than, whose polarity the sentence decides) or ``bare`` (``连续输错 5 次``).
    """

    start: int
    end: int
    kind: Literal["range", "max", "min", "lt", "gt", "bare"]
    limit: Limit


def find_limits(text: str, max_limits: int = 3) -> list[Limit]:
    """The limits stated in ``text``, in reading order, at most ``max_limits``."""
    return [bound.limit for bound in find_bounds(text)[:max_limits]]


def find_bounds(text: str) -> list[Bound]:
    """Every limit stated in ``text`` with its span and phrasing, in reading order.

    Examples ("e.g. a $120.50 order") are skipped; positions refer to ``text`` as given.
    """
    text = _EXAMPLE.sub(lambda m: " " * len(m.group(0)), text)
    digits_only = bool(_DIGITS_ONLY.search(text)) and not _LETTERS.search(text)
    found: list[Bound] = []

    def free(span: tuple[int, int]) -> bool:
        return all(span[1] <= b.start or span[0] >= b.end for b in found)

    for pattern in _RANGES:
        for m in pattern.finditer(text):
            low, high = _value(m, 1), _value(m, 2)
            unit = _unit(m, 2) if _unit(m, 2)[0] else _unit(m, 1)
            prefix = bool(m.group("cur1") or m.group("cur2"))
            if low > high or not free(m.span()) or (not unit[0] and not _ranged_word(text, m)):
                continue
            limit = _make(low, high, unit, prefix, digits_only, m.group("n1"), m.group("n2"))
            found.append(Bound(m.start(), m.end(), "range", limit))
    for pattern, kind in _BOUNDS:
        for m in pattern.finditer(text):
            if not free(m.span()):
                continue
            value, unit = _value(m, 1), _unit(m, 1)
            prefix = bool(m.group("cur1"))
            probe = _make(value, value, unit, prefix, digits_only, m.group("n1"))
            lo: Decimal | None = None
            hi: Decimal | None = None
            if kind == "max":
                hi = value
            elif kind == "min":
                lo = value
            elif kind == "lt":
                hi = value - probe.step
            else:
                lo = value + probe.step
            limit = _make(lo, hi, unit, prefix, digits_only, m.group("n1"))
            found.append(Bound(m.start(), m.end(), kind, limit))  # type: ignore[arg-type]
    for m in _BARE.finditer(text):
        unit = _unit(m, 1)
        prefix = bool(m.group("cur1"))
        if not free(m.span()) or not (unit[0] or prefix):
            continue
        value = _value(m, 1)
        limit = _make(value, value, unit, prefix, digits_only, m.group("n1"))
        if limit.quantity in ("count", "time", "money", "percent"):
            limit = Limit(value, value, limit.quantity, limit.unit, limit.step, True, prefix, digits_only)
        elif limit.quantity != "length":
            continue
        found.append(Bound(m.start(), m.end(), "bare", limit))
    found.sort(key=lambda bound: bound.start)
    return found


def _ranged_word(text: str, m: re.Match[str]) -> bool:
    # "between 1 and 99" / "在 1 到 99 之间" are ranges even without a unit; "2024-01" is not.
    return bool(re.match(r"(?:between|from)\b", m.group(0), re.IGNORECASE) or "之间" in text[m.end() : m.end() + 4])


def _value(m: re.Match[str], i: int) -> Decimal:
    return Decimal(m.group(f"n{i}").replace(",", ""))


def _unit(m: re.Match[str], i: int) -> tuple[str, str]:
    """(unit as written, or the currency symbol; its normalised key)."""
    unit = m.group(f"cur{i}") or m.group(f"u{i}") or ""
    key = unit.lower()
    if key not in _LENGTH | _TIME | _MONEY | _PERCENT and key.endswith("s") and len(key) > 2:
        key = key[:-1]
    return unit, key


def _make(
    lo: Decimal | None,
    hi: Decimal | None,
    unit: tuple[str, str],
    prefix: bool,
    digits_only: bool,
    *numbers: str,
) -> Limit:
    written, key = unit
    quantity: Quantity
    if prefix or key in _MONEY:
        quantity = "money"
    elif key in _LENGTH:
        quantity = "length"
    elif key in _TIME:
        quantity = "time"
    elif key in _PERCENT:
        quantity = "percent"
    elif key:
        quantity = "count"
    else:
        quantity = "number"
    places = max((len(n.split(".")[1]) for n in numbers if "." in n), default=0)
    if places:
        step = Decimal(1).scaleb(-places)
    elif quantity == "money":
        step = Decimal("0.01")
    else:
        step = Decimal(1)
    return Limit(lo, hi, quantity, written, step, False, prefix, digits_only)
