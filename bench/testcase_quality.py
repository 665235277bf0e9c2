"""Test-case quality on the requirement yardstick (tests/fixtures/requirements): rule-based path, and a model.

For each fixture (a requirement plus constraints written by hand from it) it prints:
boundary-value recall, wrong expectations, contradictions, useless cases, quoted messages, and
requirement points made of text that is not behaviour. See agents/testcases/yardstick.py for the
definitions; tests/agents/testcases/test_yardstick.py holds the rule-based path to 0 wrong, 0
contradictions and recall >= 0.9.

The rule-based path runs in process, offline. The model path runs when ``--config`` names an aitp.yaml
with real model deployments (provider keys come from the environment as usual): it starts ``aitp serve``
with that file and submits one ``testcase.generate`` task per fixture, so a team can compare a prompt
version (``--prompt-version``) or a model (``--model``) against the rule-based baseline. With no such
file, or only the local/echo stand-in, the model path is skipped with a note.

Usage (from the repo root):
    .venv/bin/python bench/testcase_quality.py                 # rule-based, default cap 30
    .venv/bin/python bench/testcase_quality.py --cap 10 -v     # tighter cap, list every finding
    .venv/bin/python bench/testcase_quality.py --config aitp.yaml --model plus
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from harness import stop_process  # noqa: E402

from agents.testcases.schemas import CaseDraft, RequirementPoint  # noqa: E402
from agents.testcases.yardstick import Fixture, Score, load_fixtures, rule_based, score  # noqa: E402

Generate = Callable[[Fixture], tuple[list[RequirementPoint], list[CaseDraft]]]
PORT_LINE = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cap", type=int, default=30, help="max_cases per requirement (the server default is 30)")
    parser.add_argument("--fixtures", type=Path, default=REPO / "tests" / "fixtures" / "requirements")
    parser.add_argument("--config", type=Path, help="an aitp.yaml with real model deployments: score the model path")
    parser.add_argument("--model", help="model for the model path (default: the server's generation.model)")
    parser.add_argument("--prompt-version", type=int, help="testcase.generate prompt version for the model path")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every wrong, contradicting or useless case")
    args = parser.parse_args()
    fixtures = load_fixtures(args.fixtures)
    print(f"{len(fixtures)} fixtures from {args.fixtures}, max_cases {args.cap}\n")
    print("rule-based path (source: heuristic)")
    report(fixtures, lambda f: rule_based(f, args.cap), args.verbose)
    reason = model_skip_reason(args.config)
    if reason:
        print(f"\nmodel path skipped: {reason}")
        return
    print(f"\nmodel path ({args.config}, model {args.model or 'default'})")
    with ModelPath(args.config, args.cap, args.model, args.prompt_version) as model:
        report(fixtures, model.generate, args.verbose)


def report(fixtures: Sequence[Fixture], generate: Generate, verbose: bool) -> Score:
    total = Score(name="total")
    header = f"{'fixture':<20}{'cases':>6}{'recall':>16}{'wrong':>7}{'contra':>8}{'useless':>9}{'messages':>10}"
    print(header + f"{'non-points':>12}")
    for fixture in fixtures:
        points, cases = generate(fixture)
        scored = score(fixture, points, cases)
        total.add(scored)
        print(_row(fixture.name, scored))
        if verbose:
            for line in scored.wrong + scored.contradictions + scored.useless + scored.untestable_points:
                print(f"    {line}")
    print(_row("TOTAL", total))
    return total


def _row(name: str, s: Score) -> str:
    recall = f"{s.recall:.2f} ({len(s.found)}/{s.expected_values})"
    messages = f"{s.messages_found}/{s.messages_expected}"
    return (
        f"{name:<20}{s.cases:>6}{recall:>16}{len(s.wrong):>7}{len(s.contradictions):>8}{len(s.useless):>9}"
        f"{messages:>10}{len(s.untestable_points):>12}"
    )


def model_skip_reason(config: Path | None) -> str | None:
    if config is None:
        return "no --config given (pass an aitp.yaml whose models are real deployments)"
    if not config.is_file():
        return f"{config} does not exist"
    data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    models = [m for m in data.get("models") or [] if "echo" not in str(m.get("model", ""))]
    if not models:
        return f"{config} configures no model but the local/echo stand-in"
    return None


class ModelPath:
    """``aitp serve`` on the given config, in a scratch data directory; one task per fixture."""

    def __init__(self, config: Path, cap: int, model: str | None, prompt_version: int | None) -> None:
        self.config, self.cap, self.model, self.prompt_version = config.resolve(), cap, model, prompt_version
        self.tmp = tempfile.TemporaryDirectory(prefix="aitp-quality-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.http: httpx.Client | None = None

    def __enter__(self) -> ModelPath:
        admin = "sk-aitp-quality-" + secrets.token_urlsafe(24)
        env = {**os.environ, "AITP_ADMIN_KEY": admin, "AITP_CONFIG": str(self.config)}
        env |= {"AITP_DATA_DIR": str(Path(self.tmp.name) / "data"), "AITP_LOG_LEVEL": "info"}
        log = Path(self.tmp.name) / "server.log"
        command = [sys.executable, "-m", "aitp.cli", "serve", "--port", "0"]
        self.proc = subprocess.Popen(
            command, cwd=self.tmp.name, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 180
        while not (match := PORT_LINE.search(log.read_text(errors="replace"))):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"aitp serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        base = f"http://127.0.0.1:{match.group(1)}"
        self.http = httpx.Client(base_url=base, headers={"authorization": f"Bearer {admin}"}, timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.http is not None:
            self.http.close()
        if self.proc is not None:
            stop_process(self.proc)
        self.tmp.cleanup()

    def generate(self, fixture: Fixture) -> tuple[list[RequirementPoint], list[CaseDraft]]:
        assert self.http is not None
        spec: dict[str, Any] = {"requirement": fixture.text, "language": fixture.language, "max_cases": self.cap}
        spec |= {"use_knowledge": False}
        if self.model:
            spec["model"] = self.model
        if self.prompt_version:
            spec["prompt_version"] = self.prompt_version
        task = self.http.post("/api/tasks", json={"kind": "testcase.generate", "input": spec}).json()
        while task.get("status") not in ("succeeded", "failed", "cancelled"):
            time.sleep(0.5)
            task = self.http.get(f"/api/tasks/{task['id']}").json()
        if task["status"] != "succeeded":
            raise RuntimeError(f"{fixture.name}: task {task['status']}: {task.get('error')}")
        result = task["result"]
        if result["source"] != "llm":
            print(f"    {fixture.name}: fell back to the rule-based path ({result.get('fallback')})")
        points = [RequirementPoint.model_validate(p) for p in result["requirement_points"]]
        fields = CaseDraft.model_fields
        cases = [CaseDraft.model_validate({k: v for k, v in c.items() if k in fields}) for c in result["cases"]]
        return points, cases


if __name__ == "__main__":
    main()
