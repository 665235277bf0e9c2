"""The model's two jobs in the browser runner, both through the gateway core in process (budgeted, recorded).

- ``browser.heal``: when fingerprints cannot heal a step, name the one element it meant (or none);
- ``browser.plan``: a plain description and a start URL become spec steps, validated before they run.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from core.errors import InvalidRequest

from ..answers import extract_json
from ..llm import AgentLLM, LLMFailure, is_echo
from ..tasks.context import TaskContext
from ..tasks.kinds import TaskError, TransientError
from .heal import AskModel
from .spec import Spec, parse_spec

log = logging.getLogger("aitp.browser.model")
HEAL_PROMPT = "browser.heal"
PLAN_PROMPT = "browser.plan"


class BrowserModel:
    def __init__(self, llm: AgentLLM) -> None:
        self.llm = llm

    def heal_asker(self, ctx: TaskContext) -> AskModel | None:
        """The model fallback of healing for this task; None when only the local echo stand-in would answer."""
        if self.llm.only_echo:
            return None
        calls = 0

        async def ask(page: dict[str, Any], question: dict[str, Any]) -> dict[str, Any] | None:
            nonlocal calls
            calls += 1
            variables = {**question, "page": page}
            try:
                done = await self.llm.complete(
                    ctx, f"heal-{calls}", prompt={"name": HEAL_PROMPT, "variables": variables}
                )
            except LLMFailure as exc:
                log.warning("heal by model skipped: %s", exc.message)
                return None
            answer, error = extract_json(done.content)
            if error is not None or not isinstance(answer, dict):
                log.warning("heal by model: the answer is not a JSON object (%s)", error)
                return None
            return answer

        return ask

    async def plan(
        self, ctx: TaskContext, description: str, url: str, page: dict[str, Any], language: str, max_steps: int
    ) -> tuple[Spec, dict[str, Any]]:
        """A spec that starts at ``url`` and carries out ``description``; the model's notes beside it."""
        variables = {"goal": description, "page": page, "language": language, "max_steps": max_steps}
        try:
            done = await self.llm.complete(ctx, "plan", prompt={"name": PLAN_PROMPT, "variables": variables})
        except LLMFailure as exc:
            if exc.reason == "unavailable":
                raise TransientError(f"no model answered the plan: {exc.message}") from None
            raise TaskError(
                exc.message, type="budget_exceeded" if exc.reason == "budget" else "llm_invalid_request"
            ) from None
        if is_echo(done):
            raise TaskError(
                "no model is configured, so a description cannot be planned into steps",
                type="no_model",
                hint="configure a model in aitp.yaml, or give a spec instead of a description",
            )
        answer, error = extract_json(done.content)
        if error is not None or not isinstance(answer, dict) or not isinstance(answer.get("steps"), list):
            raise TaskError(f"the model's plan is not a JSON object with steps ({error})", type="plan_invalid")
        parts = urlsplit(url)
        body = {
            "name": description[:200],
            "base_url": f"{parts.scheme}://{parts.netloc}",
            "steps": [{"action": "goto", "url": url}, *answer["steps"]],
        }
        try:
            spec = parse_spec(body)
        except (InvalidRequest, ValidationError) as exc:
            message = exc.message if isinstance(exc, InvalidRequest) else str(exc)
            raise TaskError(f"the model's plan is not a valid spec: {message}", type="plan_invalid") from None
        notes = {"finished": bool(answer.get("finished")), "assumptions": answer.get("assumptions") or []}
        notes |= {"model": done.model, "prompt_version": done.prompt_version}
        return spec, notes
