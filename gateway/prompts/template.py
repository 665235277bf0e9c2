"""Compiling and rendering a prompt's templates in Jinja2's sandbox.

Templates run in an ``ImmutableSandboxedEnvironment``: no access to Python
internals and no mutation of the values passed in. ``StrictUndefined`` turns
a variable the caller did not pass into an error rather than an empty string,
and autoescape is off (prompts are not HTML). ``trim_blocks`` and
``lstrip_blocks`` keep ``{% if %}`` lines from leaving blank lines behind,
and ``tojson`` writes Chinese as is (Jinja's own escapes it for HTML).

Everything is checked at publish: syntax (with the line), unknown filters,
every variable a template reads must be declared in ``variables``, and the
schema's patterns must run on RE2. At render time the variables are
validated against that schema first, so a caller learns every missing or
wrong-typed variable at once.

A render runs on a budget (:mod:`.sandbox`): past ``prompts.render_timeout_s``
it answers 400 ``template_timeout``, and past ``prompts.max_render_chars`` or
``prompts.max_render_steps`` 400 ``template_too_large``, naming the limit.
Callers on the event loop render in a worker thread (:func:`.use.prepare`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError

from core import schema
from core.errors import InvalidRequest

from .sandbox import BoundedSandbox, BudgetExceeded, RenderLimits, tojson
from .spec import Draft, PromptSpec

_REQUIRED = re.compile(r"^'(.+)' is a required property$")


def sandbox(limits: RenderLimits | None = None) -> BoundedSandbox:
    return BoundedSandbox(
        limits or RenderLimits(),
        {"tojson": tojson},
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


class RenderError(InvalidRequest):
    code = "prompt_render_failed"


def _over_budget(tag: str, where: str, exc: BudgetExceeded) -> InvalidRequest:
    fix = (
        "simplify its loops or pass smaller variables"
        if exc.code == "template_timeout"
        else "shorten the template's output or its variables"
    )
    return InvalidRequest(f"prompt {tag} {where} stopped: {exc.message}; {fix}", code=exc.code)


@dataclass(frozen=True, slots=True)
class CompiledPrompt:
    """A published version's templates, compiled once; rendering validates the variables first."""

    tag: str  # name@version, for messages
    spec: PromptSpec
    templates: tuple[Template, ...]
    validator: jsonschema.protocols.Validator
    defaults: Mapping[str, Any]
    env: BoundedSandbox

    def render(self, variables: Mapping[str, Any], param: str = "variables") -> list[dict[str, str]]:
        """The messages for ``variables``; CPU-bound up to ``prompts.render_timeout_s``, so not on the event loop."""
        with self.env.budget():
            return self._render(variables, param)

    def _render(self, variables: Mapping[str, Any], param: str) -> list[dict[str, str]]:
        values = {**copy.deepcopy(dict(self.defaults)), **variables}
        try:
            errors = sorted(self.validator.iter_errors(values), key=_order)
        except BudgetExceeded as exc:
            raise _over_budget(self.tag, "checking the variables", exc) from None
        except RecursionError:
            raise InvalidRequest(
                f"variables for prompt {self.tag} could not be checked: its schema refers to itself without end",
                param=param,
                code="invalid_prompt_variables",
            ) from None
        problems = [_describe(e, param) for e in errors]
        if problems:
            declared = ", ".join(sorted(self.spec.declared())) or "none"
            raise InvalidRequest(
                f"variables for prompt {self.tag} are invalid: {'; '.join(problems)} "
                f"(declared variables: {declared}; GET /api/prompts/{self.spec.name} shows the schema)",
                param=param,
                code="invalid_prompt_variables",
            )
        messages: list[dict[str, str]] = []
        for index, (message, template) in enumerate(zip(self.spec.template, self.templates, strict=True)):
            try:
                content = self._output(template, values).strip()
            except BudgetExceeded as exc:
                raise _over_budget(self.tag, f"template[{index}]", exc) from None
            except RecursionError:
                raise RenderError(
                    f"prompt {self.tag} template[{index}] recursed too deeply (a macro calling itself without end?)"
                ) from None
            except SecurityError as exc:
                raise RenderError(
                    f"prompt {self.tag} template[{index}] did something the sandbox forbids: {exc}"
                ) from None
            except TemplateError as exc:
                raise RenderError(
                    f"prompt {self.tag} template[{index}] failed to render: {exc.message}; "
                    "pass the variable, or fix the template to guard it with 'is defined'"
                ) from None
            except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
                raise RenderError(
                    f"prompt {self.tag} template[{index}] failed to render ({type(exc).__name__}: {exc}); "
                    "publish a fixed version of the prompt"
                ) from None
            if content:  # a message whose template rendered to nothing (an optional block) is left out
                messages.append({"role": message.role, "content": content})
        if not messages:
            raise RenderError(f"prompt {self.tag} rendered no message for these variables")
        return messages

    def _output(self, template: Template, values: Mapping[str, Any]) -> str:
        budget, parts = self.env.current(), []
        for part in template.generate(values):
            budget.write(len(part))
            parts.append(part)
        return "".join(parts)


def _order(error: jsonschema.ValidationError) -> tuple[str, ...]:
    return tuple(str(p) for p in error.absolute_path)


def _describe(error: jsonschema.ValidationError, param: str) -> str:
    where = ".".join([param, *(str(p) for p in error.absolute_path)])
    if error.validator == "required":
        match = _REQUIRED.match(error.message)
        if match:
            return f"'{where}.{match.group(1)}' is required"
    if error.validator == "additionalProperties":
        return f"'{where}': {error.message} (not declared by the prompt)"
    return f"'{where}': {error.message}"


def compile_prompt(env: BoundedSandbox, draft: Draft, tag: str) -> CompiledPrompt:
    """Compile every template of ``draft``; 400 naming the message, line and problem."""
    spec = draft.spec
    declared = spec.declared()
    templates: list[Template] = []
    for index, message in enumerate(spec.template):
        field = f"template[{index}].content"
        try:
            ast = env.parse(message.content)
            templates.append(env.from_string(message.content))
        except TemplateSyntaxError as exc:
            line = exc.lineno or 1
            where = f"line {line}"
            start = draft.content_lines.get(index)
            if start is not None:
                where += f" (line {start + line - 1} of the file)"
            raise InvalidRequest(
                f"{field} has a Jinja2 syntax error at {where}: {(exc.message or '').rstrip('.')}; "
                "fix the template and publish again",
                param=field,
                code="template_syntax_error",
            ) from None
        unknown = sorted(meta.find_undeclared_variables(ast) - declared - set(env.globals))
        if unknown:
            names = ", ".join(f"'{n}'" for n in unknown)
            raise InvalidRequest(
                f"{field} uses {names}, not declared in variables.properties; declare each (with its type) "
                "or remove it from the template",
                param=field,
                code="undeclared_variable",
            )
    properties = spec.variables.get("properties", {})
    defaults = {k: v["default"] for k, v in properties.items() if isinstance(v, dict) and "default" in v}
    # Deadline-checked: a schema's $refs can make validation grow exponentially with the variables' depth.
    validator = schema.validator(spec.variables, before_keyword=env.tick)
    return CompiledPrompt(
        tag=tag, spec=spec, templates=tuple(templates), validator=validator, defaults=defaults, env=env
    )
