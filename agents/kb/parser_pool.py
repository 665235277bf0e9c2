"""Documents parsed and chunked in child processes: each with an address-space cap and a time limit.

A parser fed a crafted upload can need gigabytes or minutes; in the server
process that stalls every request and keeps the memory. Here each document
goes to a fresh pebble worker (``max_tasks=1``) forked from a forkserver that
has the parser libraries loaded, with ``RLIMIT_AS`` set to
``kb.parser_memory_bytes``. A worker past ``kb.parser_timeout_s``, or whose
caller went away (the future cancelled), is killed; its memory goes back to
the system with it.

The pool starts on the first document, not on import or construction.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
from concurrent.futures.process import BrokenProcessPool

from pebble import ProcessExpired, ProcessPool

from core.errors import InvalidRequest, ServiceUnavailable
from core.settings import KnowledgeSettings

from .limits import ParseLimits, mib, over_limit
from .preparation import Prepared, Refusal, limit_memory, prepare_document

log = logging.getLogger("aitp.agents.kb.parsers")
# Loaded once in the forkserver, so that a worker starts in milliseconds with them in place.
_PRELOAD = ["agents.kb.preparation", "docx", "pypdf", "openpyxl", "markdown_it", "selectolax.lexbor"]


class ParserPool:
    def __init__(self, settings: KnowledgeSettings) -> None:
        self.limits = ParseLimits.of(settings)
        self.memory_bytes = settings.parser_memory_bytes
        self.timeout_s = settings.parser_timeout_s
        self.processes = settings.parser_processes
        self._pool: ProcessPool | None = None
        self._lock = threading.Lock()

    async def prepare(self, data: bytes | str, content_type: str | None, filename: str | None) -> Prepared:
        """The parsed text and its chunks, or the 400 that names the limit the document went past."""
        # Starting the pool forks processes and waits for them: not on the event loop.
        pool = self._pool if self._pool is not None else await asyncio.to_thread(self._start)
        try:
            future = pool.schedule(
                prepare_document,
                args=(data, content_type, filename, self.limits, self.memory_bytes),
                timeout=self.timeout_s,
            )
            outcome = await asyncio.wrap_future(future)
        except TimeoutError:
            raise over_limit(
                f"parsing the document took longer than {self.timeout_s:g} s",
                f"{self.timeout_s:g} s",
                "parser_timeout_s",
            ) from None
        except ProcessExpired as exc:
            raise InvalidRequest(
                f"the parser process stopped (exit code {exc.exitcode}) while reading the document; it may be "
                f"damaged, or need more than kb.parser_memory_bytes ({mib(self.memory_bytes)}): re-save or split it",
                param="file",
                code="unreadable_document",
            ) from None
        except (BrokenProcessPool, RuntimeError) as exc:
            self._discard(pool)
            raise ServiceUnavailable(
                f"the document parser processes could not run ({type(exc).__name__}: {exc}); retry",
                code="kb_parser_unavailable",
                headers={"retry-after": "2"},
            ) from None
        if isinstance(outcome, Refusal):
            raise outcome.error()
        assert isinstance(outcome, Prepared)
        return outcome

    def _start(self) -> ProcessPool:
        with self._lock:
            if self._pool is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(_PRELOAD)
                self._pool = ProcessPool(
                    max_workers=self.processes,
                    max_tasks=1,
                    initializer=limit_memory,
                    initargs=(self.memory_bytes,),
                    context=context,
                )
            return self._pool

    def _discard(self, pool: ProcessPool) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.stop()  # type: ignore[no-untyped-call]

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()  # type: ignore[no-untyped-call]
            pool.join(timeout=10)
