"""Cases for the numeric constraints of a requirement, with outcomes that follow from each constraint's polarity.

Validation: min−1 and max+1 refused (quoting the requirement's message), min and max accepted, plus a
negative case of values far outside. Condition: the rule applies at min and max, not at min−1 and max+1.
Threshold: below the count nothing happens, at it the effect happens, above it the effect holds. Timing:
just inside and just after, in neutral words. Every step names the field.
"""

from __future__ import annotations

from decimal import Decimal

from agents.testcases.boundaries import Limit
from agents.testcases.constraints import Constraint, value_inside
from agents.testcases.writer import Candidate, Writer, fill, short

NUMERIC_TIER = 0
NEGATIVE_TIER = 1


def boundary_case(wr: Writer, covers: list[str], point: str, c: Constraint) -> Candidate | None:
    """The boundary case of one constraint, or ``None`` when it has no testable edge."""
    if c.kind == "threshold":
        return _threshold(wr, covers, point, c)
    if c.kind == "timing":
        return _timing(wr, covers, point, c)
    values = edge_values(c.limit)
    if not values:
        return None
    steps = [_step(wr, c, v) for v in values]
    title = fill(wr.w["bnd_title"], {"short": short(point), "values": "/".join(c.limit.fmt(v) for v in values)})
    return wr.case(NUMERIC_TIER, 1, "boundary", title, covers, steps)


def negative_case(
    wr: Writer, covers: list[str], point: str, c: Constraint, with_edges: bool, core: bool
) -> Candidate | None:
    """Values far outside a validated range (and just outside it when no boundary case is asked for)."""
    if c.kind != "validation":
        return None
    lim = c.limit
    values = [v for v in edge_values(lim) if not value_inside(lim, v)] if with_edges else []
    if lim.quantity == "length":
        if lim.lo is not None and lim.lo > 1:
            values.insert(0, Decimal(0))
        if lim.hi is not None:
            values.append(lim.hi * 2 + 1)
    else:
        if lim.lo is None or lim.lo >= 0:
            values.insert(0, Decimal(-1) if lim.lo is None or lim.lo > 0 else lim.lo - lim.step * 100)
        if lim.hi is not None:
            values.append(lim.hi * 10 if lim.hi > 0 else lim.hi + lim.step * 100)
    steps = [_step(wr, c, v) for v in dict.fromkeys(values) if not value_inside(lim, v)]
    if lim.quantity != "length":
        steps.append((fill(wr.w["enter_text"], {"field": c.field}), "abc", _refusal(wr, c, "abc")))
    if not steps:
        return None
    title = fill(wr.w["range_neg_title"], {"short": short(point)})
    return wr.case(NEGATIVE_TIER, 1 if core else 2, "negative", title, covers, steps)


def valid_step(wr: Writer, c: Constraint) -> tuple[str, str, str] | None:
    """The functional path through one constraint: a valid value, a value meeting the condition, the threshold."""
    if c.kind == "validation":
        return _step(wr, c, _valid_value(c.limit))
    if c.kind == "condition":
        edge = c.limit.lo if c.limit.lo is not None else c.limit.hi
        return _step(wr, c, edge) if edge is not None else None
    if c.kind == "threshold" and c.limit.hi is not None:
        shown = c.limit.render(c.limit.hi, wr.lang)
        key = "thr_at_msg" if c.message else "thr_at"
        n = {"n": shown, "effect": _flat(c.effect), "msg": c.message or ""}
        return fill(wr.w["thr_do"], {"action": c.action, "v": shown}).strip(), shown, fill(wr.w[key], n)
    return None


def edge_values(lim: Limit) -> list[Decimal]:
    """min−1, min, max, max+1 (an exact value: n−1, n, n+1); lengths and counts never below 0."""
    if lim.exact and lim.lo is not None:
        raw = [lim.lo - lim.step, lim.lo, lim.lo + lim.step]
    else:
        raw = []
        if lim.lo is not None:
            raw += [lim.lo - lim.step, lim.lo]
        if lim.hi is not None:
            raw += [lim.hi, lim.hi + lim.step]
    floor = lim.quantity in ("length", "count")
    return list(dict.fromkeys(v for v in raw if not floor or v >= 0))


def _step(wr: Writer, c: Constraint, v: Decimal) -> tuple[str, str, str]:
    lim, w = c.limit, wr.w
    shown = lim.render(v, wr.lang)
    if lim.quantity == "length":
        action = fill(w["enter_length"], {"field": c.field, "n": lim.fmt(v)})
    else:
        action = fill(w["enter_value"], {"field": c.field, "v": shown})
    if c.kind == "condition":
        key = "cond_meets" if value_inside(lim, v) else "cond_misses"
        return action, shown, fill(w[key], {"v": _label(wr, lim, v), "effect": _flat(c.effect)})
    if value_inside(lim, v):
        return action, shown, fill(w["accepted"], {"v": _label(wr, lim, v)})
    return action, shown, _refusal(wr, c, _label(wr, lim, v))


def _refusal(wr: Writer, c: Constraint, label: str) -> str:
    if c.message:
        return fill(wr.w["rejected_msg"], {"msg": c.message, "v": label})
    return fill(wr.w["rejected"], {"v": label})


def _label(wr: Writer, lim: Limit, v: Decimal) -> str:
    if lim.quantity == "length":
        return fill(wr.w["length_label"], {"n": lim.fmt(v)})
    return lim.render(v, wr.lang)


def _threshold(wr: Writer, covers: list[str], point: str, c: Constraint) -> Candidate | None:
    lim, w = c.limit, wr.w
    if lim.hi is None:
        return None
    n = lim.render(lim.hi, wr.lang)
    effect = _flat(c.effect)
    steps = []
    values = [v for v in (lim.hi - lim.step, lim.hi, lim.hi + lim.step) if v >= 0]
    for v in values:
        shown = lim.render(v, wr.lang)
        action = fill(w["thr_do"], {"action": c.action, "v": shown}).strip()
        if v < lim.hi:
            expected = fill(w["thr_below"], {"n": n, "effect": effect})
        elif v == lim.hi:
            key = "thr_at_msg" if c.message else "thr_at"
            expected = fill(w[key], {"n": n, "effect": effect, "msg": c.message or ""})
        else:
            expected = fill(w["thr_above"], {"n": n, "effect": effect})
        steps.append((action, shown, expected))
    title = fill(w["thr_title"], {"short": short(point), "values": "/".join(lim.fmt(v) for v in values)})
    return wr.case(NUMERIC_TIER, 1, "boundary", title, covers, steps)


def _timing(wr: Writer, covers: list[str], point: str, c: Constraint) -> Candidate | None:
    lim, w = c.limit, wr.w
    edge = lim.hi if lim.hi is not None else lim.lo
    if edge is None or edge - lim.step < 0:
        return None
    n = lim.render(edge, wr.lang)
    inside, after = edge - lim.step, edge + lim.step
    steps = [
        (fill(w["timing_do"], {"v": lim.render(inside, wr.lang)}), lim.render(inside, wr.lang), w["timing_inside"]),
        (fill(w["timing_do"], {"v": lim.render(after, wr.lang)}), lim.render(after, wr.lang), w["timing_after"]),
    ]
    title = fill(w["timing_title"], {"short": short(point), "values": f"{lim.fmt(inside)}/{lim.fmt(after)}"})
    return wr.case(NUMERIC_TIER, 1, "boundary", title, covers, steps, n=n)


def _valid_value(lim: Limit) -> Decimal:
    if lim.lo is not None and lim.hi is not None:
        middle = (lim.lo + lim.hi) / 2
        return middle.quantize(lim.step) if lim.step < 1 else middle.to_integral_value()
    if lim.lo is not None:
        return lim.lo + lim.step
    assert lim.hi is not None
    return max(lim.hi - lim.step, Decimal(1) if lim.quantity in ("length", "count") else Decimal(0))


def _flat(text: str) -> str:
    # One clause, so that a negation in front of it ("不触发：…") governs all of it.
    return text.replace("，", "、").replace(",", "").replace("；", "、").replace(";", "")
