"""A registry prompt in a chat request: resolve, render, and merge into the body.

The rendered messages come first, then the request's own; the prompt's
response schema becomes the request's ``response_format`` when the client
gave none (so the routing policy and the cascade apply to it), and its tier
hint goes to the routing policy.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from core.errors import NotFound
from gateway.schemas import PromptRef

from .registry import PromptRegistry

_SCHEMA_NAME = re.compile(r"[^a-zA-Z0-9_-]")


@dataclass(frozen=True, slots=True)
class PromptCall:
    name: str
    version: int
    tier: str | None  # 'turbo' or 'plus'; None for 'auto'
    messages: list[dict[str, str]]
    response_schema: dict[str, Any] | None

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"

    def response_format(self) -> dict[str, Any] | None:
        if self.response_schema is None:
            return None
        # OpenAI's schema names allow letters, digits, '_' and '-' only.
        name = _SCHEMA_NAME.sub("_", self.name)[:64]
        return {"type": "json_schema", "json_schema": {"name": name, "schema": self.response_schema}}

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """The request body with the prompt rendered into it (and the ``prompt`` field gone)."""
        out = {k: v for k, v in body.items() if k != "prompt"}
        out["messages"] = [*self.messages, *(body.get("messages") or [])]
        fmt = self.response_format()
        if fmt is not None and not body.get("response_format"):
            out["response_format"] = fmt
        return out


async def prepare(registry: PromptRegistry, ref: PromptRef, prefix: str = "prompt.") -> PromptCall:
    """Resolve and render ``ref``; 404 for an unknown prompt, version or label, 400 listing bad variables."""
    try:
        version = await registry.resolve(ref.name, version=ref.version, label=ref.label)
    except NotFound as exc:
        exc.param = f"{prefix}{exc.param}" if exc.param else exc.param
        raise
    spec = version.spec
    # A render may take up to prompts.render_timeout_s of CPU: a worker thread keeps the event loop serving.
    messages = await asyncio.to_thread(version.compiled.render, ref.variables, f"{prefix}variables")
    return PromptCall(
        name=version.name,
        version=version.version,
        tier=None if spec.tier == "auto" else spec.tier,
        messages=messages,
        response_schema=spec.response_schema,
    )
