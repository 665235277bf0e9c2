"""How long each test-case export format takes to write, and how big the file is.

Writes 100 cases of 5 steps (Chinese text, the size of the largest generation: ``max_cases`` is at
most 100) in every registered format, in each format's last layout (one row per step where there is
a choice), and prints the median of ``--runs`` writes. The service writes off the event loop, so
these are the seconds a worker thread spends, not the time a request blocks other requests.

    .venv/bin/python bench/testcase_exports.py --runs 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.testcases.export import EXPORTERS
from agents.testcases.export_base import ExportDocument
from agents.testcases.schemas import Step, TestCase


def cases(count: int, steps: int) -> list[TestCase]:
    return [
        TestCase(
            id=f"tc_{n:04d}",
            title=f"密码长度为 {n} 位时的登录校验",
            module=f"模块 {n % 5}",
            preconditions=["已注册用户", "位于登录页"],
            steps=[
                Step(
                    step=s,
                    action=f"输入第 {s} 步的密码",
                    data=str(s * 7),
                    expected=f"提示：密码长度须为 8-20 位（{s}）",
                )
                for s in range(1, steps + 1)
            ],
            priority="P1",
            type="boundary",
            covers=["R1", "R2"],
            source="heuristic",
        )
        for n in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    items = cases(args.cases, args.steps)
    print(f"{args.cases} cases x {args.steps} steps, median of {args.runs} writes")
    for name, found in EXPORTERS.items():
        document = ExportDocument(items, None, "登录 PRD", "zh", found.layouts[-1])
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            data = found.write(document)
            times.append(time.perf_counter() - start)
        median_ms = statistics.median(times) * 1000
        print(f"  {name:9s} layout={found.layouts[-1]:4s} {len(data):>9,d} bytes  {median_ms:8.1f} ms")


if __name__ == "__main__":
    main()
