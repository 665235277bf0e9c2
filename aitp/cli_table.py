"""Plain-text tables for the CLI's human output (``--json`` prints the server's JSON instead).

Widths count display columns, so Chinese text (two columns a character) lines up.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

MAX_CELL = 60  # display columns; longer cells end with "…"


def width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def cell(value: Any, limit: int = MAX_CELL) -> str:
    if value is None:
        text = "-"
    elif isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, list | tuple):
        text = ", ".join(str(v) for v in value)
    else:
        text = str(value)
    text = " ".join(text.split())  # one line per row
    if width(text) <= limit:
        return text
    out, used = "", 0
    for ch in text:
        used += width(ch)
        if used > limit - 1:
            break
        out += ch
    return out + "…"


def table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    """``columns`` of each row, left-aligned under ``headers`` (default: the column names upper-cased)."""
    body = [[cell(row.get(c)) for c in columns] for row in rows]
    head = list(headers or [c.upper() for c in columns])
    widths = [max([width(head[i]), *(width(r[i]) for r in body)]) for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v + " " * (widths[i] - width(v)) for i, v in enumerate(values)).rstrip()

    return "\n".join([line(head), *(line(r) for r in body)])


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def say(text: str) -> None:
    """Notes for a person (progress, hints): stderr, so that stdout stays what a script parses."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
