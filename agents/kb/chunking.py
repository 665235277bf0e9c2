"""Chunking: sections into chunks of about ``chunk_chars`` characters, on paragraph and sentence boundaries.

A section (the text under one heading) is never mixed with another. Inside
it, paragraphs are packed together; a paragraph too long for one chunk is cut
at sentence ends (Chinese 。！？； as well as . ! ? ;), and a sentence too long
at a space, or anywhere for unspaced Chinese, but never inside a character
sequence that renders as one (combining marks, joiners). Each chunk after the
first in a section starts with up to ``overlap`` characters from the end of the
previous one, from a sentence or word start where there is one, so that a fact
split across the boundary is still found.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .limits import over_limit
from .parsers import Section

_PARAGRAPHS = re.compile(r"\n[ \t]*\n")
# A sentence ends after terminal punctuation (and any closing quotes or brackets), a ". " or a line end.
_SENTENCE_END = re.compile(r"[。！？；!?;…]+[”’」』）)\]\"']*\s*|\.(?:\s+|$)|\n")
_SPACE = re.compile(r"\s")
_JOINERS = {"\u200d", "\u200c", "\u2060"}


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int  # position in the document, from 0
    section: str
    text: str
    content_hash: str  # sha256 of the chunk text


def chunk_sections(
    sections: Sequence[Section], chunk_chars: int, overlap: int, max_chunks: int | None = None
) -> list[Chunk]:
    """The chunks in document order; past ``max_chunks`` a 400 naming ``kb.max_chunks_per_document``.

    The count is checked as chunks are made, so an oversized document stops
    after ``max_chunks + 1`` chunks instead of being cut up whole first.
    """
    if chunk_chars < 2 or not 0 <= overlap < chunk_chars:
        raise ValueError("chunk_chars must be at least 2 and overlap between 0 and chunk_chars - 1")
    chunks: list[Chunk] = []
    for section in sections:
        for text in _pack(section.text, chunk_chars, overlap):
            if max_chunks is not None and len(chunks) >= max_chunks:
                raise over_limit(
                    f"the document makes more than {max_chunks} chunks",
                    str(max_chunks),
                    "max_chunks_per_document",
                    fix="split it into smaller documents",
                    param=None,
                )
            digest = hashlib.sha256(text.encode()).hexdigest()
            chunks.append(Chunk(len(chunks), section.heading, text, digest))
    return chunks


def split_sentences(text: str) -> list[str]:
    """Sentences with their trailing punctuation and spaces; joined with '' they give back ``text``."""
    out: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if match.end() > start:
            out.append(text[start : match.end()])
            start = match.end()
    if start < len(text):
        out.append(text[start:])
    return out


def safe_cut(text: str, position: int) -> int:
    """``position`` moved back so that no combining mark, variation selector or joiner starts the second part."""
    position = max(1, min(position, len(text)))
    while 0 < position < len(text) and _binds_left(text[position]):
        position -= 1
    while 0 < position < len(text) and text[position - 1] in _JOINERS:
        position -= 1
    return position if position > 0 else min(len(text), 1)


def _binds_left(char: str) -> bool:
    return bool(unicodedata.combining(char)) or char in _JOINERS or "\ufe00" <= char <= "\ufe0f"


def _pieces(text: str, limit: int) -> Iterator[tuple[str, str]]:
    """(separator before, piece) with every piece at most ``limit`` characters."""
    for paragraph in _PARAGRAPHS.split(text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if len(paragraph) <= limit:
            yield "\n\n", paragraph
            continue
        separator = "\n\n"
        for sentence in split_sentences(paragraph):
            for piece in _hard_split(sentence, limit):
                yield separator, piece
                separator = ""


def _hard_split(sentence: str, limit: int) -> Iterator[str]:
    while len(sentence) > limit:
        cut = safe_cut(sentence, limit)
        space = max((m.start() for m in _SPACE.finditer(sentence, 0, cut)), default=-1)
        if space > limit // 2:
            cut = space + 1
        yield sentence[:cut]
        sentence = sentence[cut:]
    if sentence:
        yield sentence


def _tail(text: str, size: int) -> str:
    """At most ``size`` characters from the end of ``text``, from a sentence or word start if one is near."""
    if size <= 0 or not text:
        return ""
    start = safe_cut(text, len(text) - size) if len(text) > size else 0
    candidate = text[start:]
    for match in _SENTENCE_END.finditer(candidate):
        if match.end() < len(candidate) and len(candidate) - match.end() >= size // 4:
            return candidate[match.end() :].lstrip()
        break
    if start > 0 and not text[start - 1].isspace():
        space = _SPACE.search(candidate)
        if space is not None and len(candidate) - space.end() >= size // 4:
            return candidate[space.end() :]
    return candidate.lstrip()


def _pack(text: str, limit: int, overlap: int) -> Iterator[str]:
    current = ""
    for separator, piece in _pieces(text, limit):
        if not current:
            current = piece
        elif len(current) + len(separator) + len(piece) <= limit:
            current += separator + piece
        else:
            done = current.strip()
            yield done
            tail = _tail(done, min(overlap, limit - len(piece) - 1))
            current = tail + _glue(tail, separator, piece) + piece if tail else piece
    if current.strip():
        yield current.strip()


def _glue(left: str, separator: str, right: str) -> str:
    if separator or not left or not right:
        return separator
    # Sentences of one paragraph carry their own spaces, but the overlap was stripped at its end.
    return " " if left[-1].isascii() and right[0].isascii() and not right[0].isspace() else ""
