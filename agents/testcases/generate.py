"""``testcase.generate``: requirement → points → retrieval → prompt → model → validated, de-duplicated cases.

Every step is checkpointed (:class:`agents.tasks.workflow.Workflow`), so a worker
that dies mid-task resumes at its last finished step and never pays for a
model answer twice. When no model can give valid cases — none configured
but the ``local/echo`` stand-in, none reachable, a budget blocks, or every
answer (first, repaired, re-asked on plus) fails validation — a rule-based
generator writes a baseline set, marked ``source: heuristic``, and the result
says why in ``fallback``.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import APIError, InvalidRequest, NotFound
from core.identity.principal import Principal
from gateway.prompts.use import prepare
from gateway.schemas import PromptRef

from ..llm import LLMFailure, answer_record, is_echo, repair_request
from ..services import AgentServices
from ..tasks.context import TaskContext
from ..tasks.kinds import Kind, TaskError
from ..tasks.workflow import Workflow
from .consistency import remove_conflicts
from .coverage import coverage
from .dedupe import case_key, dedupe_text, near_duplicates
from .heuristic import rule_based_cases
from .points import detect_language, split_requirement
from .schemas import (
    CASE_TYPES,
    DRAFT_LABELS,
    PRIORITIES,
    CaseDraft,
    CaseType,
    GenerationOptions,
    Priority,
    RequirementPoint,
    TestCase,
    validate_output,
)
from .store import new_case_id

log = logging.getLogger("aitp.agents.testcases")

PROMPT = "testcase.generate"
MAX_CONTEXT_CHARS = 1500
QUERY_CHARS = 300  # the retrieval query: the requirement's opening, which names its subject


class GenerateInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requirement: str | None = Field(default=None, min_length=1, max_length=100_000, description="requirement text")
    document_id: str | None = Field(default=None, min_length=1, max_length=64, description="a knowledge-base document")
    module: str = Field(default="", max_length=200)
    case_types: list[CaseType] = Field(default_factory=lambda: list(CASE_TYPES), min_length=1)
    priorities: list[Priority] = Field(default_factory=lambda: list(PRIORITIES), min_length=1)
    language: Literal["zh", "en"] | None = Field(default=None, description="default: the requirement's language")
    max_cases: int | None = Field(default=None, ge=1, le=100, description="default: generation.max_cases")
    use_knowledge: bool = Field(default=True, description="retrieve related knowledge and accepted cases")
    prompt_version: int | None = Field(default=None, ge=1, description="default: the production label's version")
    prompt_label: str | None = Field(default=None, min_length=1, max_length=64)
    model: str | None = Field(default=None, min_length=1, max_length=128, description="default: generation.model")

    @model_validator(mode="after")
    def _one_source(self) -> GenerateInput:
        if (self.requirement is None) == (self.document_id is None):
            raise ValueError("give exactly one of 'requirement' (text) or 'document_id' (a knowledge-base document)")
        if len(set(self.case_types)) != len(self.case_types) or len(set(self.priorities)) != len(self.priorities):
            raise ValueError("case_types and priorities must not repeat values")
        if self.prompt_version is not None and self.prompt_label is not None:
            raise ValueError("give prompt_version or prompt_label, not both")
        return self


class Generator:
    """One execution of a generation task."""

    def __init__(self, services: AgentServices, ctx: TaskContext, spec: GenerateInput) -> None:
        self.s = services
        self.ctx = ctx
        self.spec = spec
        self.wf = Workflow(ctx)
        self.settings = services.settings.generation

    async def run(self) -> dict[str, Any]:
        req = await self.wf.step("load_requirement", 5, self._load)
        language: Literal["zh", "en"] = req["language"]
        options = GenerationOptions(
            case_types=self.spec.case_types,
            priorities=self.spec.priorities,
            language=language,
            max_cases=self.spec.max_cases or self.settings.max_cases,
            module=self.spec.module,
        )
        points = await self.wf.step("split_points", 10, lambda: self._points(req["text"], language))
        context = await self.wf.step("retrieve", 20, lambda: self._retrieve(req))
        plan = await self.wf.step("render_prompt", 30, lambda: self._render(req["text"], context, options))
        llm = await self._model_cases(plan, options)
        if llm.get("output") is not None:
            output = llm["output"]
            drafts = [CaseDraft.model_validate(x) for x in output["cases"]]
            points_used = [RequirementPoint.model_validate(p) for p in output["requirement_points"]]
            open_questions = list(output.get("open_questions") or [])
            source: Literal["llm", "heuristic"] = "llm"
            written = {}
        else:
            written = await self.wf.step("heuristic_fallback", 75, lambda: self._heuristic(points, options))
            if isinstance(written, list):  # a checkpoint of an earlier version: the cases only
                written = {"cases": written}
            drafts = [CaseDraft.model_validate(x) for x in written["cases"]]
            points_used = [RequirementPoint.model_validate(p) for p in points]
            open_questions = []
            source = "heuristic"
        prompt_tag = {"name": plan.get("name"), "version": plan.get("version")} if source == "llm" else None
        # Cases must not contradict each other, whoever wrote them; the rules check their own too.
        drafts, contradictions = remove_conflicts(drafts)
        contradictions = [*written.get("conflicts_removed", []), *contradictions]
        kept = await self.wf.step("dedupe", 85, lambda: self._dedupe(drafts, source, prompt_tag))
        await self.wf.step("store", 95, lambda: self._store(kept["cases"]))
        stored = [TestCase.model_validate(x) for x in kept["cases"]]
        self.s.metrics.cases.labels(source).inc(len(stored))
        self.s.metrics.duplicates.inc(kept["dropped"])
        if llm.get("fallback"):
            self.s.metrics.fallbacks.labels(llm["fallback"]["reason"]).inc()
        cover = coverage(points_used, stored)
        label = DRAFT_LABELS[language] if source == "heuristic" else None
        return {
            "source": source,
            "draft": source == "heuristic",
            "label": label,
            "notes": list(written.get("notes", [])),
            "dropped": dict(written.get("dropped", {})),
            "contradictions_removed": contradictions,
            "fallback": llm.get("fallback"),
            "requirement": {"source": req["source"], "chars": len(req["text"]), "language": language},
            "prompt": prompt_tag,
            "model": llm.get("model"),
            "llm_calls": llm.get("calls", 0),
            "case_count": len(stored),
            "dropped_duplicates": kept["dropped"],
            "requirement_points": [p.model_dump() for p in points_used],
            "coverage": cover.model_dump(),
            "open_questions": open_questions,
            "cases": [{**case.model_dump(mode="json"), "draft": case.draft, "label": case.label} for case in stored],
            "resumed_from": self.wf.resumed_from,
        }

    # -- steps -----------------------------------------------------------------------------------

    async def _load(self) -> dict[str, Any]:
        if self.spec.document_id is not None:
            try:
                text = await self.s.kb.document_text(self.ctx.project_id, self.spec.document_id)
            except NotFound:
                raise TaskError(
                    f"knowledge-base document '{self.spec.document_id}' not found in this project",
                    type="document_not_found",
                    hint="GET /api/kb/documents lists the project's documents",
                ) from None
            source = f"kb:{self.spec.document_id}"
        else:
            text = self.spec.requirement or ""
            source = "input"
        text = text.strip()
        if not text:
            raise TaskError("the requirement is empty", type="empty_requirement", hint="send requirement text")
        return {"text": text, "source": source, "language": self.spec.language or detect_language(text)}

    async def _points(self, text: str, language: Literal["zh", "en"]) -> list[dict[str, Any]]:
        return [p.model_dump() for p in split_requirement(text, language)]

    async def _retrieve(self, req: dict[str, Any]) -> dict[str, Any]:
        if not self.spec.use_knowledge or self.settings.retrieval_k == 0:
            return {"knowledge": [], "examples": []}
        query = req["text"][:QUERY_CHARS]
        k = self.settings.retrieval_k
        try:
            # One query embedding serves both searches (embedding is most of a search's cost).
            vector = await self.s.kb.embedder.query(self.ctx.project_id, query)
            hits = await self.s.kb.search(self.ctx.project_id, query, k=k + 2, kind="document", vector=vector)
            examples = await self.s.kb.search(
                self.ctx.project_id, query, k=max(1, k // 2), kind="example", vector=vector
            )
        except (APIError, OSError, ValueError, RuntimeError) as exc:
            # Retrieval improves the cases; its failure must not stop the task.
            await self.ctx.emit("retrieval_failed", {"error": str(exc)[:500]})
            return {"knowledge": [], "examples": []}
        own = self.spec.document_id
        knowledge = [
            {"source": h.source or h.title or "", "text": h.text[:MAX_CONTEXT_CHARS], "score": round(h.score, 4)}
            for h in hits
            if h.doc_id != own
        ][:k]
        accepted = [
            {"source": f"accepted case: {h.title}", "text": h.text[:MAX_CONTEXT_CHARS], "score": round(h.score, 4)}
            for h in examples
        ]
        return {"knowledge": knowledge, "examples": accepted}

    async def _render(self, text: str, context: dict[str, Any], options: GenerationOptions) -> dict[str, Any]:
        if self.s.llm.only_echo:
            return {"skip": "echo_only"}
        variables = {
            "requirement": text,
            "module": options.module,
            "context": [{"source": c["source"], "text": c["text"]} for c in context["knowledge"] + context["examples"]],
            "case_types": list(options.case_types),
            "priorities": list(options.priorities),
            "max_cases": options.max_cases,
            "language": options.language,
        }
        ref = PromptRef(
            name=PROMPT,
            version=self.spec.prompt_version,
            label=self.spec.prompt_label,
            variables=variables,
        )
        try:
            call = await prepare(self.s.prompts, ref)
        except APIError as exc:
            raise TaskError(
                f"cannot render prompt '{PROMPT}': {exc.message}",
                type="prompt_error",
                hint="check the prompt's version/label (GET /api/prompts/testcase.generate)",
            ) from None
        # Pinned: a resumed task (or a repair) uses the very version this task started with.
        return {"name": call.name, "version": call.version, "variables": variables, "schema": call.response_schema}

    async def _model_cases(self, plan: dict[str, Any], options: GenerationOptions) -> dict[str, Any]:
        """Ask, validate, repair, re-ask on plus; the first valid output wins. {'output': None} means fall back."""
        if "skip" in plan:
            return {"output": None, "fallback": {"reason": plan["skip"], "detail": "only local/echo is configured"}}
        prompt = {"name": plan["name"], "version": plan["version"], "variables": plan["variables"]}
        calls = 0
        attempts: list[tuple[str, str, dict[str, Any]]] = [
            ("call_llm", "validate", {"prompt": prompt}),
            ("repair", "validate_repair", {}),
            ("escalate_plus", "validate_plus", {"prompt": prompt, "model": "plus"}),
        ]
        progress = 40
        errors: list[str] = []
        last_content = ""
        last_model: str | None = None
        for call_step, check_step, args in attempts:
            if call_step == "repair":
                args = self._repair_args(plan, last_content, errors, options)
            answer = await self.wf.step(call_step, progress, functools.partial(self._ask, call_step, args))
            progress += 8
            if "failure" in answer:
                return {"output": None, "fallback": answer["failure"], "calls": calls}
            calls += 1
            last_content, last_model = answer["content"], answer["model"]
            checked = await self.wf.step(check_step, progress, functools.partial(self._validate, last_content, options))
            progress += 5
            if checked["output"] is not None:
                return {"output": checked["output"], "model": last_model, "calls": calls}
            errors = checked["errors"]
            await self.ctx.emit("invalid_output", {"step": call_step, "errors": errors[:20]})
        detail = "; ".join(errors[:5])
        return {
            "output": None,
            "model": last_model,
            "calls": calls,
            "fallback": {"reason": "invalid_output", "detail": f"no valid answer after repair and plus: {detail}"},
        }

    def _repair_args(
        self, plan: dict[str, Any], content: str, errors: list[str], options: GenerationOptions
    ) -> dict[str, Any]:
        return repair_request(
            invalid_output=content[:60_000],
            errors=errors[:50],
            schema=plan["schema"] or {},
            task="test cases generated from a requirement",
            language=options.language,
            schema_name="testcase_generate",
        )

    async def _ask(self, step: str, args: dict[str, Any]) -> dict[str, Any]:
        try:
            done = await self.s.llm.complete(
                self.ctx,
                step,
                prompt=args.get("prompt"),
                model=args.get("model") or self.spec.model,
                response_format=args.get("response_format"),
            )
        except LLMFailure as exc:
            if exc.reason == "invalid_request":
                raise TaskError(f"the model call was refused: {exc.message}", type="llm_request_invalid") from None
            reason = "budget_blocked" if exc.reason == "budget" else "no_model_reachable"
            return {"failure": {"reason": reason, "detail": exc.message, "code": exc.code}}
        if is_echo(done):
            return {"failure": {"reason": "echo_only", "detail": "the request was answered by local/echo"}}
        return answer_record(done)

    async def _validate(self, content: str, options: GenerationOptions) -> dict[str, Any]:
        output, errors = validate_output(content)
        if output is None:
            return {"output": None, "errors": errors}
        wanted_types, wanted_priorities = set(options.case_types), set(options.priorities)
        kept = [case for case in output.cases if case.type in wanted_types and case.priority in wanted_priorities]
        if not kept:
            return {"output": None, "errors": ["cases: none of the cases has a requested type and priority"]}
        output.cases = kept[: options.max_cases]
        return {"output": output.model_dump(mode="json"), "errors": []}

    async def _heuristic(self, points: list[dict[str, Any]], options: GenerationOptions) -> dict[str, Any]:
        written = rule_based_cases([RequirementPoint.model_validate(p) for p in points], options)
        return {
            "cases": [d.model_dump(mode="json") for d in written.cases],
            "dropped": written.dropped,
            "notes": written.notes,
            "conflicts_removed": written.conflicts_removed,
        }

    async def _dedupe(
        self, drafts: list[CaseDraft], source: Literal["llm", "heuristic"], prompt: dict[str, Any] | None
    ) -> dict[str, Any]:
        drop: set[int] = set()
        keys = [case_key(d) for d in drafts]
        # Only cases that share a key (type and test data) can be duplicates: embed just those.
        shared = [i for i, key in enumerate(keys) if keys.count(key) > 1]
        if shared:
            try:
                vectors = await self.s.kb.embed(self.ctx.project_id, [dedupe_text(drafts[i]) for i in shared])
                found = near_duplicates(vectors, self.settings.duplicate_similarity, [keys[i] for i in shared])
                drop = {shared[i] for i in found}
            except (APIError, OSError, ValueError, RuntimeError) as exc:
                await self.ctx.emit("dedupe_skipped", {"error": str(exc)[:500]})
        out = []
        for index, draft in enumerate(drafts):
            if index in drop:
                continue
            case = TestCase(
                **draft.model_dump(),
                id=new_case_id(),
                source=source,
                prompt_name=prompt["name"] if prompt else None,
                prompt_version=prompt["version"] if prompt else None,
                task_id=self.ctx.task_id,
            )
            out.append(case.model_dump(mode="json"))
        return {"cases": out, "dropped": len(drop)}

    async def _store(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        await self.s.testcases.replace_for_task(self.ctx.project_id, self.ctx.task_id, items)
        return {"stored": len(items)}


def testcase_kind(services: AgentServices) -> Kind:
    async def run(ctx: TaskContext, spec: GenerateInput) -> dict[str, Any]:
        return await Generator(services, ctx, spec).run()

    async def check_submit(principal: Principal, spec: GenerateInput) -> None:
        if spec.document_id is None:
            return
        try:
            await services.kb.get_document(principal.project_id, spec.document_id)
        except NotFound:
            # Another project's document is "not found" too: its existence is not the caller's to know.
            raise InvalidRequest(
                f"knowledge-base document '{spec.document_id}' not found in project '{principal.project_id}'; "
                "GET /api/kb/documents (or `aitp kb list`) lists its documents, or send 'requirement' text instead",
                param="input.document_id",
                code="document_not_found",
            ) from None

    return Kind(
        name="testcase.generate",
        input_model=GenerateInput,
        run=run,
        description="requirement text or a knowledge-base document -> reviewed-ready test cases with coverage",
        check_submit=check_submit,
    )
