"""One process at a time for the embedded stores of a data directory.

Embedded Chroma keeps its index in the process that opened it, and a second
process writing the same directory corrupts it. Every process that opens the
embedded knowledge base holds this lock first, so the second one says at once
who holds it and what to do instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".aitp-embedded.lock"


class DataDirBusy(RuntimeError):
    """Another process holds the embedded stores of this data directory."""


@contextlib.contextmanager
def hold_embedded(path: Path, use_instead: str) -> Iterator[None]:
    """Hold ``path``'s lock until the block ends; :class:`DataDirBusy` naming the holder if it is taken."""
    path.mkdir(parents=True, exist_ok=True)
    lock_path = path / LOCK_NAME
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise DataDirBusy(
                f"the embedded knowledge base in {path} is in use by another aitp process (pid {holder}); "
                f"embedded Chroma allows one process only. {use_instead}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
