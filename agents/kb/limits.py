"""What one document may cost to read: the ``kb.*`` limits as one picklable value, and the refusal they give.

A parser runs in a separate process (:mod:`agents.kb.parser_pool`); these
limits travel with each document so that the child needs no settings of its
own. Every refusal names the limit and the setting that raises it.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InvalidRequest
from core.settings import KnowledgeSettings

_DEFAULTS = KnowledgeSettings()


@dataclass(frozen=True, slots=True)
class ParseLimits:
    max_unpacked_bytes: int = _DEFAULTS.max_unpacked_bytes
    max_unpacked_member_bytes: int = _DEFAULTS.max_unpacked_member_bytes
    max_compression_ratio: float = _DEFAULTS.max_compression_ratio
    max_archive_members: int = _DEFAULTS.max_archive_members
    allow_nested_archives: bool = _DEFAULTS.allow_nested_archives
    max_pdf_pages: int = _DEFAULTS.max_pdf_pages
    max_pdf_stream_bytes: int = _DEFAULTS.max_pdf_stream_bytes
    max_text_chars: int = _DEFAULTS.max_text_chars
    max_chunks: int = _DEFAULTS.max_chunks_per_document
    chunk_chars: int = _DEFAULTS.chunk_chars
    chunk_overlap: int = _DEFAULTS.chunk_overlap

    @classmethod
    def of(cls, kb: KnowledgeSettings) -> ParseLimits:
        return cls(
            max_unpacked_bytes=kb.max_unpacked_bytes,
            max_unpacked_member_bytes=kb.max_unpacked_member_bytes,
            max_compression_ratio=kb.max_compression_ratio,
            max_archive_members=kb.max_archive_members,
            allow_nested_archives=kb.allow_nested_archives,
            max_pdf_pages=kb.max_pdf_pages,
            max_pdf_stream_bytes=kb.max_pdf_stream_bytes,
            max_text_chars=kb.max_text_chars,
            max_chunks=kb.max_chunks_per_document,
            chunk_chars=kb.chunk_chars,
            chunk_overlap=kb.chunk_overlap,
        )


def over_limit(
    what: str, limit: str, setting: str, fix: str = "split the document", param: str | None = "file"
) -> InvalidRequest:
    """The 400 for a document beyond a limit: what was found, the limit, the setting and the way out."""
    return InvalidRequest(
        f"{what}: over the limit of {limit} (kb.{setting}); {fix}, or raise kb.{setting}",
        param=param,
        code="document_too_large",
    )


def mib(size: float) -> str:
    """A size as people read it: bytes, MiB or GiB."""
    if size >= 1024**3:
        return f"{size / 1024**3:.1f} GiB"
    return f"{size / 1024**2:.1f} MiB" if size >= 1024**2 else f"{int(size)} bytes"
