"""Parse and chunk one document: the work a parser process does, and what it sends back.

:func:`prepare_document` runs in a child process (:mod:`agents.kb.parser_pool`)
whose address space is capped by :func:`limit_memory`. It never raises: a
refusal comes back as a :class:`Refusal` (an exception with keyword fields
would not survive pickling), which the server turns into its 400 again.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

from core.errors import InvalidRequest

from .chunking import Chunk, chunk_sections
from .limits import ParseLimits, mib
from .parsers import parse_document


@dataclass(frozen=True, slots=True)
class Prepared:
    content_type: str
    title: str | None
    text: str
    chunks: list[Chunk]


@dataclass(frozen=True, slots=True)
class Refusal:
    message: str
    param: str | None
    code: str | None

    def error(self) -> InvalidRequest:
        return InvalidRequest(self.message, param=self.param, code=self.code)


def limit_memory(max_bytes: int) -> None:
    """Cap this process's address space (a document that needs more fails here with MemoryError), and
    yield the CPU to the server: parsing is batch work, answering requests is not."""
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))
    os.nice(10)


def prepare_document(
    data: bytes | str, content_type: str | None, filename: str | None, limits: ParseLimits, memory_bytes: int
) -> Prepared | Refusal:
    try:
        parsed = parse_document(data, content_type, filename, limits)
        chunks = chunk_sections(parsed.sections, limits.chunk_chars, limits.chunk_overlap, limits.max_chunks)
    except InvalidRequest as exc:
        # A C library (libxml2 above all) that cannot allocate reports a parse error, not MemoryError.
        if exc.code == "unreadable_document" and _came_near_the_limit():
            return _out_of_memory(memory_bytes)
        return Refusal(exc.message, exc.param, exc.code)
    except MemoryError:
        return _out_of_memory(memory_bytes)
    except RecursionError:
        return Refusal(
            "the document is nested too deeply to read; re-save it from its editor", "file", "unreadable_document"
        )
    return Prepared(parsed.content_type, parsed.title, parsed.text, chunks)


def _out_of_memory(memory_bytes: int) -> Refusal:
    return Refusal(
        f"reading the document needs more memory than the parser's limit of {mib(memory_bytes)} "
        "(kb.parser_memory_bytes); split the document, or raise kb.parser_memory_bytes",
        "file",
        "document_too_large",
    )


def _came_near_the_limit() -> bool:
    """Whether this process's peak address space reached 90% of its RLIMIT_AS."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return False
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmPeak:"):
                return int(line.split()[1]) * 1024 >= soft * 0.9
    return False
