"""Cases must not contradict each other: the same field and input value may not be accepted in one case
and rejected in another.

Works on any cases (a model's or the rules'), from their text (:mod:`agents.testcases.reading`). The field
of a step is the name it quotes in 「」 or "" when it has one, else its action with numbers and sample
strings removed, so that "输入 7 位密码" and "输入 9 位密码" name the same field.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from agents.testcases.reading import QUOTED, Outcome, outcome, step_values
from agents.testcases.schemas import CaseDraft

_NAME = re.compile(r"「([^」]{1,60})」|\"([^\"]{1,60})\"")
_NOISE = re.compile(r"[\W\d_]+")
_PREFERRED = ("boundary", "negative", "functional", "security")  # built for the constraint first


@dataclass(frozen=True, slots=True)
class Fact:
    """One step's claim: entering ``value`` in ``field`` gives ``outcome``."""

    case: int
    step: int
    field: str
    value: Decimal
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Conflict:
    field: str
    value: Decimal
    accepted_by: tuple[int, ...]  # case indices
    rejected_by: tuple[int, ...]

    def describe(self, cases: Sequence[CaseDraft]) -> str:
        ok = ", ".join(repr(cases[i].title) for i in self.accepted_by)
        bad = ", ".join(repr(cases[i].title) for i in self.rejected_by)
        return f"{self.field} = {self.value}: accepted by {ok}, rejected by {bad}"


def step_field(action: str) -> str:
    """The field a step acts on: its quoted name, else its action without numbers and samples."""
    named = _NAME.search(action)
    if named:
        return (named.group(1) or named.group(2)).strip().lower()
    return _NOISE.sub("", QUOTED.sub("", action)).lower()


def facts(cases: Sequence[CaseDraft]) -> list[Fact]:
    """Every step with one input value and a clear outcome."""
    out: list[Fact] = []
    for ci, case in enumerate(cases):
        for step in case.steps:
            values = step_values(step.action, step.data)
            said = outcome(step.expected)
            if len(values) != 1 or said is None:
                continue  # several values in one step, or no clear outcome: nothing to compare
            out.append(Fact(ci, step.step, step_field(step.action), values[0], said))
    return out


def find_conflicts(cases: Sequence[CaseDraft]) -> list[Conflict]:
    """Each (field, value) that some case accepts and another rejects."""
    groups: dict[tuple[str, Decimal], dict[Outcome, list[int]]] = defaultdict(lambda: {"accept": [], "reject": []})
    for fact in facts(cases):
        if fact.field:
            groups[(fact.field, fact.value)][fact.outcome].append(fact.case)
    return [
        Conflict(field, value, tuple(dict.fromkeys(by["accept"])), tuple(dict.fromkeys(by["reject"])))
        for (field, value), by in groups.items()
        if by["accept"] and by["reject"]
    ]


def remove_conflicts(cases: Sequence[CaseDraft]) -> tuple[list[CaseDraft], list[str]]:
    """``cases`` without the offenders of every conflict, and a line per removed case saying why.

    The offender is the side fewer cases take; on a tie, the case less built for the constraint (a boundary
    or negative case is kept over a functional one), then the later case. Repeats until nothing conflicts.
    """
    kept = list(cases)
    removed: list[str] = []
    while conflicts := find_conflicts(kept):
        conflict = conflicts[0]
        votes = Counter({"accept": len(conflict.accepted_by), "reject": len(conflict.rejected_by)})
        if votes["accept"] != votes["reject"]:
            losers = conflict.accepted_by if votes["accept"] < votes["reject"] else conflict.rejected_by
            offender = losers[-1]
        else:
            both = conflict.accepted_by + conflict.rejected_by
            offender = max(both, key=lambda i: (_rank(kept[i]), i))
        removed.append(f"{kept[offender].title}: contradicts another case on {conflict.describe(kept)}")
        del kept[offender]
    return kept, removed


def _rank(case: CaseDraft) -> int:
    return _PREFERRED.index(case.type)


__all__ = ["Conflict", "Fact", "facts", "find_conflicts", "remove_conflicts", "step_field"]
