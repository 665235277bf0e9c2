"""The process's own figures on a registry: CPU, memory, file descriptors, and the data directory's disk.

Each process keeps its own :class:`~prometheus_client.CollectorRegistry`
(nothing is registered globally), so these are added to it explicitly:
``process_*`` from prometheus_client's collector (read from ``/proc``), and
the disk under ``data_dir`` (SQLite, embedded Chroma, spilled usage rows).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, ProcessCollector


def register_process_metrics(registry: CollectorRegistry, data_dir: Path) -> None:
    ProcessCollector(registry=registry)

    def existing() -> Path:
        path = data_dir.resolve()
        while not path.exists() and path != path.parent:
            path = path.parent
        return path

    total = Gauge("aitp_disk_total_bytes", "Size of the file system holding data_dir", registry=registry)
    free = Gauge("aitp_disk_free_bytes", "Free space on the file system holding data_dir", registry=registry)
    total.set_function(lambda: shutil.disk_usage(existing()).total)
    free.set_function(lambda: shutil.disk_usage(existing()).free)
