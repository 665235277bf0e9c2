"""JSON out of a model's answer: the object itself, or one path-named error to send to a repair prompt."""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```[ \t]*(?:json|JSON|json5)?[ \t]*\n?(.*?)```", re.DOTALL)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


def extract_json(raw: Any) -> tuple[Any, str | None]:
    """``(value, None)`` or ``(None, error)``; Markdown fences, reasoning blocks and prose around the JSON pass."""
    if not isinstance(raw, str):
        return raw, None
    text = _THINK.sub("", raw).strip()
    if not text:
        return None, "$: the answer is empty; answer with one JSON object"
    candidates = [text, *(m.group(1).strip() for m in _FENCE.finditer(text))]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    failures: list[tuple[str, json.JSONDecodeError]] = []
    for candidate in candidates:
        try:
            return json.loads(candidate), None
        except json.JSONDecodeError as exc:
            failures.append((candidate, exc))
    # Report the error inside what looks like the JSON, not the one at the prose around it.
    error = next((e for c, e in failures if c.startswith(("{", "["))), failures[0][1])
    return None, (
        f"$: not valid JSON ({error.msg} at line {error.lineno} column {error.colno}); "
        "answer with one JSON object only, without Markdown or prose"
    )
