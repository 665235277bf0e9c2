"""The requirement yardstick: score generated cases against constraints written by hand from a requirement.

A fixture is ``NAME.md`` (the requirement) and ``NAME.yaml`` (what a careful tester reads in it)::

    language: zh
    constraints:
      - id: username-length
        kind: range            # range: values are accept/reject; threshold: below/triggered
        field: [用户名]         # words a step uses for this field (its action or data, else the case title)
        values: {2: reject, 3: accept, 20: accept, 21: reject}
        message: 用户名长度需为 3-20 位   # quoted in the expected result of a rejected/triggered value
        effect: [锁定]          # threshold only: the words that say it was triggered
    untestable: ["98%"]         # text that is not behaviour: no case may test it

Scores, from the cases' text alone (:mod:`agents.testcases.reading`), so a model's cases are judged
exactly like the rules':

- **recall**: expected values that some step enters with the expected outcome, over all expected values;
- **wrong**: steps that enter an expected value of a field with the opposite outcome (must be 0);
- **contradictions**: (constraint, value) pairs accepted in one step and rejected in another (must be 0);
- **useless**: cases that test untestable text, or repeat an earlier case step for step;
- **messages**: constraints with a message whose message some rejected/triggered step quotes.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml

from agents.testcases.reading import mentions, outcome, quoted, step_values
from agents.testcases.schemas import CaseDraft, RequirementPoint

Verdict = Literal["accept", "reject", "below", "triggered"]
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Expected:
    id: str
    kind: Literal["range", "threshold"]
    field: tuple[str, ...]
    values: dict[Decimal, Verdict]
    message: str | None = None
    effect: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Fixture:
    name: str
    text: str
    language: Literal["zh", "en"]
    constraints: tuple[Expected, ...]
    untestable: tuple[str, ...] = ()


@dataclass(slots=True)
class Score:
    name: str
    cases: int = 0
    expected_values: int = 0
    found: set[tuple[str, Decimal]] = field(default_factory=set)
    wrong: list[str] = field(default_factory=list)
    contradictions: list[str] = field(default_factory=list)
    useless: list[str] = field(default_factory=list)
    messages_expected: int = 0
    messages_found: int = 0
    untestable_points: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return len(self.found) / self.expected_values if self.expected_values else 1.0

    def add(self, other: Score) -> None:
        self.cases += other.cases
        self.expected_values += other.expected_values
        self.found |= {(f"{other.name}/{key}", value) for key, value in other.found}
        self.wrong += [f"{other.name}: {w}" for w in other.wrong]
        self.contradictions += [f"{other.name}: {c}" for c in other.contradictions]
        self.useless += [f"{other.name}: {u}" for u in other.useless]
        self.messages_expected += other.messages_expected
        self.messages_found += other.messages_found
        self.untestable_points += [f"{other.name}: {p}" for p in other.untestable_points]


def load_fixtures(directory: Path) -> list[Fixture]:
    """Every ``*.md`` with its ``*.yaml`` in ``directory``, by name."""
    out = []
    for md in sorted(directory.glob("*.md")):
        spec = yaml.safe_load(md.with_suffix(".yaml").read_text(encoding="utf-8"))
        out.append(
            Fixture(
                name=md.stem,
                text=md.read_text(encoding="utf-8"),
                language=spec["language"],
                constraints=tuple(_expected(c) for c in spec.get("constraints") or []),
                untestable=tuple(str(u) for u in spec.get("untestable") or []),
            )
        )
    return out


def score(fixture: Fixture, points: Sequence[RequirementPoint], cases: Sequence[CaseDraft]) -> Score:
    result = Score(name=fixture.name, cases=len(cases))
    result.expected_values = sum(len(c.values) for c in fixture.constraints)
    result.untestable_points = [p.text for p in points if _touches(p.text, fixture.untestable)]
    said: dict[tuple[str, Decimal], set[Verdict]] = defaultdict(set)
    quoted_by: dict[str, set[str]] = defaultdict(set)
    for case in cases:
        for step in case.steps:
            for constraint, value, verdict in _claims(fixture, case, step.action, step.data, step.expected):
                said[(constraint.id, value)].add(verdict)
                if verdict == constraint.values[value]:
                    result.found.add((constraint.id, value))
                    if verdict in ("reject", "triggered"):
                        quoted_by[constraint.id] |= {_norm(q) for q in quoted(step.expected)}
                else:
                    result.wrong.append(
                        f"{case.title!r} step {step.step}: {constraint.id} = {value} is "
                        f"{constraint.values[value]}, the case says {verdict}"
                    )
    result.contradictions = [f"{cid} = {value}: {sorted(v)}" for (cid, value), v in said.items() if len(v) > 1]
    for constraint in fixture.constraints:
        if constraint.message:
            result.messages_expected += 1
            result.messages_found += _norm(constraint.message) in quoted_by[constraint.id]
    result.useless = _useless(fixture, points, cases)
    return result


def _claims(
    fixture: Fixture, case: CaseDraft, action: str, data: str, expected: str
) -> list[tuple[Expected, Decimal, Verdict]]:
    """What one step claims about the fixture's constraints: (constraint, value, verdict).

    The step's field is found in its action and data, else in the case title; a value that two matching
    constraints both list is judged by whichever the step agrees with (the benefit of the doubt).
    """
    values = step_values(action, data)
    if len(values) != 1:
        return []
    value = values[0]
    near = f"{action} {data}".lower()
    candidates = [c for c in fixture.constraints if value in c.values and _names(c, near)]
    if not candidates:
        candidates = [c for c in fixture.constraints if value in c.values and _names(c, case.title.lower())]
    claims: list[tuple[Expected, Decimal, Verdict]] = []
    for constraint in candidates:
        verdict = _verdict(constraint, expected)
        if verdict is not None:
            claims.append((constraint, value, verdict))
    agreeing = [claim for claim in claims if claim[2] == claim[0].values[claim[1]]]
    return agreeing or claims[:1]


def _verdict(constraint: Expected, expected: str) -> Verdict | None:
    if constraint.kind == "threshold":
        hit = mentions(expected, list(constraint.effect))
        return None if hit is None else ("triggered" if hit else "below")
    return outcome(expected)


def _names(constraint: Expected, text: str) -> bool:
    return any(word.lower() in text for word in constraint.field)


def _useless(fixture: Fixture, points: Sequence[RequirementPoint], cases: Sequence[CaseDraft]) -> list[str]:
    bad_points = {p.id for p in points if _touches(p.text, fixture.untestable)}
    seen: set[tuple[str, ...]] = set()
    out = []
    for case in cases:
        body = " ".join([case.title, *(f"{s.action} {s.data} {s.expected}" for s in case.steps)])
        steps = tuple(_norm(f"{s.action}|{s.data}|{s.expected}") for s in case.steps)
        if _touches(body, fixture.untestable) or (case.covers and set(case.covers) <= bad_points):
            out.append(f"{case.title!r}: tests text that is not a requirement")
        elif (case.type, *steps) in seen:
            out.append(f"{case.title!r}: repeats an earlier case")
        seen.add((case.type, *steps))
    return out


def _touches(text: str, phrases: Sequence[str]) -> bool:
    squeezed = _SPACE.sub("", text)
    return any(_SPACE.sub("", p) in squeezed for p in phrases if p)


def _norm(text: str) -> str:
    return _SPACE.sub("", text).lower()


def _expected(raw: dict[str, Any]) -> Expected:
    kind = raw.get("kind", "range")
    allowed = {"range": ("accept", "reject"), "threshold": ("below", "triggered")}[kind]
    values: dict[Decimal, Verdict] = {}
    for key, verdict in (raw.get("values") or {}).items():
        if verdict not in allowed:
            raise ValueError(f"constraint {raw.get('id')!r}: a {kind} value is one of {allowed}, got {verdict!r}")
        values[Decimal(str(key))] = verdict
    return Expected(
        id=str(raw["id"]),
        kind=kind,
        field=tuple(str(f) for f in raw.get("field") or []),
        values=values,
        message=raw.get("message"),
        effect=tuple(str(e) for e in raw.get("effect") or []),
    )
