"""Near-duplicate cases by embedding similarity, and the text that is embedded for a case."""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence

from agents.testcases.schemas import CaseDraft


def near_duplicates(
    vectors: Sequence[Sequence[float]], threshold: float, keys: Sequence[Hashable] | None = None
) -> list[int]:
    """Indices to drop: each vector whose cosine similarity to an earlier kept one is >= ``threshold``.

    Order is priority: the first of a group of duplicates is kept. Vectors need not be normalised;
    a zero vector is similar to nothing. With ``keys``, only items with equal keys can be duplicates
    (see :func:`case_key`: sentence embeddings barely see numbers, so "7/8/9" and "19/20/21" boundary
    cases embed almost alike while testing different things).
    """
    if not vectors:
        return []
    import numpy as np  # only when there is something to compare

    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"vectors must all have the same length, got {[len(v) for v in vectors][:10]}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    kept: list[int] = []
    dropped: list[int] = []
    for index in range(len(unit)):
        peers = kept if keys is None else [k for k in kept if keys[k] == keys[index]]
        if peers and norms[index, 0] > 0 and float(np.max(unit[peers] @ unit[index])) >= threshold:
            dropped.append(index)
        else:
            kept.append(index)
    return dropped


_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


def case_key(case: CaseDraft) -> tuple[str, frozenset[str]]:
    """What two duplicates must share: the case type and the numbers (test data) the case uses."""
    return case.type, frozenset(_NUMBER.findall(case_text(case)))


def case_text(case: CaseDraft) -> str:
    """Title, preconditions and steps with data and expected results, one per line."""
    lines = [case.title]
    lines += [f"- {p}" for p in case.preconditions]
    for step in case.steps:
        data = f" [{step.data}]" if step.data else ""
        lines.append(f"{step.step}. {step.action}{data} -> {step.expected}")
    return "\n".join(lines)


def dedupe_text(case: CaseDraft, limit: int = 160) -> str:
    """A short summary embedded to find duplicates: the title and the expected results.

    Short on purpose: embedding cost grows with length, and the title and outcomes are what two
    duplicates share.
    """
    outcomes = "; ".join(step.expected for step in case.steps)
    return f"{case.title} | {outcomes}"[:limit]
