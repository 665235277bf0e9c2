"""``automation.generate``: an accepted test case -> a reviewed browser spec or HTTP API test.

Ten named steps, each checkpointed by :class:`~agents.tasks.workflow.Workflow`, so a crash, a restart or a
review resumes at the last finished step and the model call of ``generate`` is never paid twice:

1 load_case (5) · 2 retrieve_context (12) · 3 choose_target (20) · 4 render_prompt (28, pins the
prompt version) · 5 generate (40) · 6 parse (50, with ``testcase.repair`` then one retry on plus) ·
7 validate (60) · 8 normalize (70) · 9 human_review (80, the task pauses in ``reviewing``) ·
10 create_case (100).

At step 9 a reviewer approves, corrects (the corrected body is validated before it is accepted) or
rejects. A rejection with feedback regenerates once (steps 5 to 8 again, the feedback sent with the
previous body) and asks for review again; a rejection without feedback, or a second one, fails the task.
"""

from __future__ import annotations

import copy
import json
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import APIError, InvalidRequest, NotFound
from core.identity.principal import Principal
from gateway.chat import Completion
from gateway.prompts.use import prepare
from gateway.schemas import PromptRef

from ..llm import LLMFailure, answer_record, repair_request
from ..tasks.context import TaskContext
from ..tasks.kinds import Kind, TaskError, TransientError
from ..tasks.workflow import Workflow
from .store import AutomationStore
from .validate import Target, check_text, infer_target, validate_body

if TYPE_CHECKING:
    from ..services import AgentServices

KIND = "automation.generate"
PROMPT = "automation.generate"
REGENERATED = ("generate", "parse", "validate", "normalize")
# Workflow state kept beside the step results (saved with every checkpoint); not step names.
_REJECTIONS = "_rejections"  # [{feedback, body}]: the rejection that was answered with a regeneration
_AWAITING = "_awaiting_review"  # True from just before a pause until its review is answered
_CONTEXT_CHARS = 6000


class InlineStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step: int | None = Field(default=None, ge=1)
    action: str = Field(min_length=1, max_length=2000)
    data: str = Field(default="", max_length=2000)
    expected: str = Field(default="", max_length=2000)


class InlineCase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    steps: list[InlineStep | str] = Field(min_length=1, max_length=100)
    module: str = Field(default="", max_length=200)
    preconditions: list[str] = Field(default_factory=list, max_length=50)
    priority: str | None = Field(default=None, max_length=8)
    type: str | None = Field(default=None, max_length=32)


class AutomationInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    testcase_id: str | None = Field(
        default=None, min_length=1, max_length=64, description="a stored test case; it must be accepted"
    )
    case: InlineCase | None = Field(default=None, description="an inline test case (title and steps at least)")
    target: Literal["browser", "api"] | None = Field(
        default=None, description="None: api when the case speaks of HTTP methods, endpoints or status codes"
    )
    name: str | None = Field(default=None, min_length=1, max_length=200, description="the automation case's name")
    base_url: str = Field(default="", max_length=2000, description="where the system under test runs")
    page_summary: str = Field(default="", max_length=20_000, description="browser: known pages and elements")
    api_docs: str = Field(default="", max_length=50_000, description="api: the endpoints involved")
    language: Literal["zh", "en"] = "zh"

    @model_validator(mode="after")
    def _one_case(self) -> AutomationInput:
        if (self.testcase_id is None) == (self.case is None):
            raise ValueError("give exactly one of testcase_id (a stored, accepted case) or case (an inline case)")
        return self


NO_MODEL = (
    "automation.generate needs a language model, and {where} of generation.model ({model}) is served only by "
    "the built-in 'local/echo' stand-in, which repeats the prompt and cannot write a test. Configure a model "
    "under 'models:' in aitp.yaml (a DashScope, OpenAI, Ollama or vLLM deployment for the turbo and plus tiers) "
    "or export its key (DASHSCOPE_API_KEY for the default tiers), then restart; see "
    "docs/configuration.md#providers. `aitp config check` shows what is served"
)


def automation_kind(services: AgentServices) -> Kind:
    flow = AutomationFlow(services, AutomationStore(services.db, services.clock))

    async def check_submit(principal: Principal, spec: AutomationInput) -> None:
        echo = services.llm.echo_targets()
        if echo:
            where = " and ".join(echo)
            model = services.settings.generation.model
            raise InvalidRequest(NO_MODEL.format(where=where, model=model), code="no_model_configured")
        if spec.testcase_id is not None:
            try:
                await accepted_case(services, principal.project_id, spec.testcase_id)
            except TaskError as exc:
                code = "testcase_not_found" if exc.type == "case_not_found" else "testcase_not_accepted"
                raise InvalidRequest(f"{exc.message}; {exc.hint}", param="input.testcase_id", code=code) from None

    return Kind(
        name=KIND,
        input_model=AutomationInput,
        run=flow.run,
        description="an accepted test case -> a reviewed browser spec or HTTP API test (10 steps, review at 9)",
        check_review=check_review,
        check_submit=check_submit,
    )


async def accepted_case(services: AgentServices, project_id: str, case_id: str) -> dict[str, Any]:
    """The stored case, when it exists in the project and is accepted; a TaskError saying what to do otherwise."""
    try:
        stored = await services.testcases.get(project_id, case_id)
    except NotFound:
        raise TaskError(
            f"test case '{case_id}' not found in project '{project_id}'",
            type="case_not_found",
            hint="GET /api/tasks/{task_id}/testcases lists a generation's cases; pass one of their ids, or input.case",
        ) from None
    if stored.get("review_status") != "accepted":
        raise TaskError(
            f"test case '{case_id}' is {stored.get('review_status')!r}, not accepted; only reviewed cases are "
            "automated",
            type="case_not_accepted",
            hint=f"accept it first (POST /api/testcases/{case_id}/review with action 'accept'), or pass the case "
            "inline as input.case",
        )
    return stored


def check_review(decision: dict[str, Any], task_input: dict[str, Any], interrupt_data: Any) -> None:
    """A corrected body must pass the same validator as the model's; a 400 naming the problems otherwise."""
    corrected = decision.get("corrected_body")
    if corrected is None or decision.get("action") == "rejected" or not isinstance(interrupt_data, dict):
        return
    target: Target = "api" if interrupt_data.get("target") == "api" else "browser"
    _, result = check_text(corrected, interrupt_data.get("response_schema") or {}, target)
    if not result["valid"]:
        problems = "; ".join(result["errors"][:10])
        raise InvalidRequest(
            f"corrected_body is not a valid {target} automation body: {problems}; fix these and send the review "
            "again (the task keeps waiting)",
            param="corrected_body",
        )


class AutomationFlow:
    def __init__(self, services: AgentServices, store: AutomationStore) -> None:
        self._services = services
        self._store = store

    async def run(self, ctx: TaskContext, spec: AutomationInput) -> dict[str, Any]:
        flow = Workflow(ctx)
        case = await flow.step("load_case", 5, partial(self._load_case, ctx, spec))
        context = await flow.step("retrieve_context", 12, partial(self._retrieve, ctx, spec, case))
        chosen = await flow.step("choose_target", 20, partial(_choose_target, spec, case))
        target: Target = chosen["target"]
        prompt = await flow.step("render_prompt", 28, partial(self._render, spec, case, context, target))
        review = await self._until_reviewed(ctx, flow, spec, case, prompt, target)
        decision = await flow.step(
            "human_review", 80, partial(_decide, review, flow.results, spec, case, target, prompt)
        )
        created = await flow.step("create_case", 100, partial(self._create, ctx, case, target, prompt, decision))
        return {
            "automation_case_id": created["id"],
            "created_case": created,
            "target": target,
            "review": {"action": decision["action"], "feedback": decision["feedback"]},
            "validation_result": decision["validation_result"],
            "prompt": {"name": prompt["name"], "version": prompt["version"]},
            "regenerations": len(flow.results.get(_REJECTIONS) or []),
        }

    async def _until_reviewed(
        self,
        ctx: TaskContext,
        flow: Workflow,
        spec: AutomationInput,
        case: dict[str, Any],
        prompt: dict[str, Any],
        target: Target,
    ) -> dict[str, Any] | None:
        """Steps 5 to 8, then the review they wait for (None when step 9 already finished)."""
        while True:
            rejections: list[dict[str, Any]] = list(flow.results.get(_REJECTIONS) or [])
            generated = await flow.step("generate", 40, partial(self._generate, ctx, spec, prompt, rejections))
            parsed = await flow.step(
                "parse", 50, partial(self._parse, ctx, spec, case, prompt, target, generated, rejections)
            )
            validation = await flow.step("validate", 60, partial(_validate, parsed["body"], prompt, target))
            body = await flow.step("normalize", 70, partial(_normalize_step, parsed["body"], spec, case))
            if flow.finished("human_review"):
                return None
            # A review counts only when it answers the latest pause: until the task pauses again, the
            # task row still holds the rejection that asked for this regeneration.
            review = ctx.review if flow.results.get(_AWAITING) else None
            if review is None:
                await ctx.step("human_review", 80)
                flow.results[_AWAITING] = True
                await flow.forget()  # saves the checkpoint with the flag
                await ctx.pause_for_review(
                    {
                        "generated_body": body,
                        "validation_result": validation,
                        "target": target,
                        "case": {"id": case.get("id"), "title": case["title"]},
                        "prompt": {"name": prompt["name"], "version": prompt["version"]},
                        "regenerations": len(rejections),
                        "response_schema": prompt["response_schema"],
                    }
                )
            if review["action"] != "rejected":
                return review
            feedback = str(review.get("feedback") or "").strip()
            if not feedback:
                raise TaskError(
                    "the reviewer rejected the generated automation body without feedback",
                    type="rejected_by_reviewer",
                    hint="reject with feedback to regenerate once, or send action 'corrected' with a corrected_body",
                )
            if rejections:
                raise TaskError(
                    f"the reviewer rejected the regenerated body too: {feedback}",
                    type="rejected_by_reviewer",
                    hint="submit a new task with more page_summary/api_docs, or correct the body yourself",
                )
            flow.results[_REJECTIONS] = [{"feedback": feedback, "body": body}]
            flow.results[_AWAITING] = False
            await flow.forget(*REGENERATED)

    # --- steps -------------------------------------------------------------------------------------
    async def _load_case(self, ctx: TaskContext, spec: AutomationInput) -> dict[str, Any]:
        if spec.case is not None:
            steps = [
                {"step": i, "action": s, "data": "", "expected": ""}
                if isinstance(s, str)
                else {**s.model_dump(), "step": i}
                for i, s in enumerate(spec.case.steps, start=1)
            ]
            return {**spec.case.model_dump(), "id": None, "steps": steps}
        stored = await accepted_case(self._services, ctx.project_id, str(spec.testcase_id))
        keys = ("id", "title", "module", "preconditions", "steps", "priority", "type")
        return {key: stored.get(key) for key in keys}

    async def _retrieve(self, ctx: TaskContext, spec: AutomationInput, case: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"sources": [], "page_summary": spec.page_summary, "api_docs": spec.api_docs}
        k = self._services.settings.generation.retrieval_k
        if k == 0 or (spec.page_summary and spec.api_docs):
            return out
        steps = " ".join(f"{s.get('action', '')} {s.get('expected', '')}" for s in case["steps"] if isinstance(s, dict))
        try:
            hits = await self._services.kb.search(
                ctx.project_id, f"{case['title']} {steps}"[:2000], k=k, kind="document"
            )
        except NotFound:
            hits = []  # the project has no knowledge base yet
        texts: list[str] = []
        used = 0
        for hit in hits:
            text = f"[{hit.source}] {hit.text}" if hit.source else str(hit.text)
            if used + len(text) > _CONTEXT_CHARS:
                break
            texts.append(text)
            used += len(text)
            out["sources"].append({"source": hit.source, "score": round(float(hit.score), 4)})
        joined = "\n\n".join(texts)
        out["page_summary"] = spec.page_summary or joined
        out["api_docs"] = spec.api_docs or joined
        return out

    async def _render(
        self, spec: AutomationInput, case: dict[str, Any], context: dict[str, Any], target: Target
    ) -> dict[str, Any]:
        variables = {
            "case": _prompt_case(case),
            "target": target,
            "base_url": spec.base_url,
            "page_summary": context["page_summary"] if target == "browser" else "",
            "api_docs": context["api_docs"] if target == "api" else "",
            "language": spec.language,
        }
        try:
            call = await prepare(self._services.prompts, PromptRef(name=PROMPT, variables=variables))
        except APIError as exc:
            raise TaskError(
                f"cannot render prompt '{PROMPT}': {exc.message}",
                type="prompt_error",
                hint=f"check GET /api/prompts/{PROMPT} and its production label",
            ) from None
        schema = call.response_schema or {}
        return {"name": call.name, "version": call.version, "variables": variables, "response_schema": schema}

    async def _generate(
        self,
        ctx: TaskContext,
        spec: AutomationInput,
        prompt: dict[str, Any],
        rejections: list[dict[str, Any]],
        model: str | None = None,
        step: str = "generate",
    ) -> dict[str, Any]:
        ref = {"name": prompt["name"], "version": prompt["version"], "variables": prompt["variables"]}
        messages = [_feedback_message(rejections[-1], spec.language)] if rejections else None
        done = await self._complete(ctx, step, prompt=ref, messages=messages, model=model)
        return answer_record(done)

    async def _parse(
        self,
        ctx: TaskContext,
        spec: AutomationInput,
        case: dict[str, Any],
        prompt: dict[str, Any],
        target: Target,
        generated: dict[str, Any],
        rejections: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """A body that passes the validator: the answer, else its repair, else one more answer from plus."""
        schema = prompt["response_schema"]
        body, result = check_text(generated["content"], schema, target)
        attempts = [{"by": "generate", "model": generated["model"], "errors": result["errors"]}]
        if result["valid"]:
            return {"body": body, "attempts": attempts}
        request = repair_request(
            invalid_output=generated["content"],
            errors=result["errors"][:30],
            schema=schema,
            task=f"a {target} automation test for the test case '{case['title']}'",
            language=spec.language,
            schema_name="automation_generate",
        )
        repaired = answer_record(await self._complete(ctx, "repair", **request))
        body, result = check_text(repaired["content"], schema, target)
        attempts.append({"by": "repair", "model": repaired["model"], "errors": result["errors"]})
        if result["valid"]:
            return {"body": body, "attempts": attempts}
        escalated = await self._generate(ctx, spec, prompt, rejections, model="plus", step="escalate")
        body, result = check_text(escalated["content"], schema, target)
        attempts.append({"by": "escalate", "model": escalated["model"], "errors": result["errors"]})
        if result["valid"]:
            return {"body": body, "attempts": attempts}
        raise TaskError(
            f"the model's answer is not a valid {target} automation body after a repair and a retry on plus: "
            + "; ".join(result["errors"][:10]),
            type="invalid_output",
            hint="give page_summary/api_docs (or add them to the knowledge base), compare prompt versions' error "
            "rates, or write the body yourself",
        )

    async def _complete(self, ctx: TaskContext, step: str, **call: Any) -> Completion:
        try:
            return await self._services.llm.complete(ctx, step, **call)
        except LLMFailure as exc:
            if exc.reason == "budget":
                raise TaskError(
                    exc.message,
                    type="budget_exceeded",
                    hint="raise the project's budget or wait until it resets, then submit the task again",
                ) from None
            if exc.reason == "unavailable":
                raise TransientError(f"no model answered step {step}: {exc.message}") from None
            raise TaskError(exc.message, type="llm_invalid_request", hint="see the gateway's error message") from None

    async def _create(
        self, ctx: TaskContext, case: dict[str, Any], target: Target, prompt: dict[str, Any], decision: dict[str, Any]
    ) -> dict[str, Any]:
        body = decision["body"]
        return await self._store.create_or_get(
            project_id=ctx.project_id,
            task_id=ctx.task_id,
            testcase_id=case.get("id"),
            name=str(body.get("name") or case["title"]),
            target=target,
            body=body,
            validation=decision["validation_result"],
            review_action=decision["action"],
            prompt_name=prompt["name"],
            prompt_version=prompt["version"],
        )


# --- pure helpers ----------------------------------------------------------------------------------
async def _choose_target(spec: AutomationInput, case: dict[str, Any]) -> dict[str, Any]:
    if spec.target is not None:
        return {"target": spec.target, "reason": "given in input.target"}
    target, reason = infer_target(case)
    return {"target": target, "reason": reason}


async def _validate(body: Any, prompt: dict[str, Any], target: Target) -> dict[str, Any]:
    return validate_body(body, prompt["response_schema"], target)


async def _normalize_step(body: dict[str, Any], spec: AutomationInput, case: dict[str, Any]) -> dict[str, Any]:
    return normalize(body, spec, case)


def normalize(body: dict[str, Any], spec: AutomationInput, case: dict[str, Any]) -> dict[str, Any]:
    """Defaults the reviewer should see filled in: the name asked for, base_url, an empty data object."""
    out = copy.deepcopy(body)
    out["name"] = (spec.name or str(out.get("name") or "").strip() or case["title"])[:200]
    out["base_url"] = str(out.get("base_url") or "").strip() or spec.base_url
    if out.get("kind") == "browser":
        out.setdefault("data", {})
    return out


async def _decide(
    review: dict[str, Any] | None,
    state: dict[str, Any],
    spec: AutomationInput,
    case: dict[str, Any],
    target: Target,
    prompt: dict[str, Any],
) -> dict[str, Any]:
    """Step 9's outcome: the body to store (the generated one, or the reviewer's validated correction)."""
    if review is None:  # pragma: no cover - _until_reviewed returns a review whenever this step runs
        raise TaskError("the review step ran without a review", type="internal_error")
    feedback = review.get("feedback")
    corrected = review.get("corrected_body")
    if corrected is None:
        return {
            "action": review["action"],
            "feedback": feedback,
            "body": state["normalize"],
            "validation_result": state["validate"],
        }
    body, result = check_text(corrected, prompt["response_schema"], target)
    if not result["valid"]:
        raise TaskError(
            "the corrected body is not valid: " + "; ".join(result["errors"][:10]),
            type="invalid_correction",
            hint="submit the task again and correct the body so that it passes validation",
        )
    return {
        "action": "corrected",
        "feedback": feedback,
        "body": normalize(body, spec, case),
        "validation_result": result,
    }


def _prompt_case(case: dict[str, Any]) -> dict[str, Any]:
    """The case as the prompt's variables schema takes it (empty optional fields left out)."""
    out: dict[str, Any] = {"title": case["title"], "steps": case["steps"]}
    for key in ("module", "priority", "type"):
        if case.get(key):
            out[key] = str(case[key])
    if case.get("preconditions"):
        out["preconditions"] = [str(p) for p in case["preconditions"]]
    return out


def _feedback_message(rejection: dict[str, Any], language: str) -> dict[str, str]:
    previous = json.dumps(rejection["body"], ensure_ascii=False, indent=2)
    if language == "en":
        text = (
            f"A reviewer rejected this earlier answer:\n```json\n{previous}\n```\n"
            f"Reviewer feedback: {rejection['feedback']}\n"
            "Write the whole JSON object again, changed as the feedback asks."
        )
    else:
        text = (
            f"评审人驳回了上一次的结果：\n```json\n{previous}\n```\n"
            f"评审意见：{rejection['feedback']}\n"
            "请按评审意见修改，重新输出完整的 JSON 对象。"
        )
    return {"role": "user", "content": text}
