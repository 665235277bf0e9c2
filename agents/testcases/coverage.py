"""Which requirement points the cases cover, and which they leave uncovered."""

from __future__ import annotations

from collections.abc import Sequence

from agents.testcases.schemas import Coverage, PointCoverage, RequirementPoint, TestCase


def coverage(
    points: Sequence[RequirementPoint], cases: Sequence[TestCase], *, exclude_rejected: bool = False
) -> Coverage:
    """Every point with the ids of the cases covering it, in case order; ``ratio`` is covered / all points.

    Covered ids that are not points are ignored. With no points the ratio is 0: nothing is known to be covered.
    """
    by_point: dict[str, list[str]] = {point.id: [] for point in points}
    for case in cases:
        if exclude_rejected and case.review_status == "rejected":
            continue
        for point_id in dict.fromkeys(case.covers):
            if point_id in by_point:
                by_point[point_id].append(case.id)
    rows: list[PointCoverage] = []
    for point in points:
        if all(row.id != point.id for row in rows):
            rows.append(PointCoverage(id=point.id, text=point.text, cases=by_point[point.id]))
    uncovered = [row.id for row in rows if not row.cases]
    ratio = (len(rows) - len(uncovered)) / len(rows) if rows else 0.0
    return Coverage(points=rows, uncovered=uncovered, ratio=round(ratio, 4))
