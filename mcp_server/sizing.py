"""Tool results sized for an assistant's context.

An assistant reads every tool result into its context window; a result of tens
of thousands of tokens crowds out the work. Each result gets a budget: lists are
paged with an opaque cursor, long texts are cut with a marker that says how to
get the rest, and whole artefacts stay behind resources.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, TypeVar

import orjson

from core.errors import InvalidRequest

T = TypeVar("T")


def estimate_tokens(value: Any) -> int:
    """An upper-leaning estimate: ~4 ASCII characters a token, one token per other character (CJK)."""
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    return ascii_chars // 4 + (len(text) - ascii_chars) + 1


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, number = raw.partition(":")
        offset = int(number)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(
            "cursor is not one this server gave out; pass the next_cursor of the previous page", param="cursor"
        ) from None
    if kind != "o" or offset < 0:
        raise InvalidRequest("cursor is not one this server gave out", param="cursor")
    return offset


def page(items: Sequence[T], offset: int, budget_tokens: int) -> tuple[list[T], int | None]:
    """Items from ``offset`` that fit in the budget (at least one), and the next offset if any are left."""
    out: list[T] = []
    used = 0
    for index in range(offset, len(items)):
        cost = estimate_tokens(_plain(items[index]))
        if out and used + cost > budget_tokens:
            return out, index
        out.append(items[index])
        used += cost
    return out, None


def cut(text: str, budget_tokens: int, how_to_get_more: str) -> tuple[str, bool]:
    """``text`` cut to the budget, with a marker naming where the rest is."""
    if estimate_tokens(text) <= budget_tokens:
        return text, False
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if estimate_tokens(text[:mid]) <= budget_tokens:
            low = mid
        else:
            high = mid - 1
    return f"{text[:low]}\n…[cut at about {budget_tokens} tokens; {how_to_get_more}]", True


def _plain(item: Any) -> Any:
    dump = getattr(item, "model_dump", None)
    return dump(mode="json") if callable(dump) else item
