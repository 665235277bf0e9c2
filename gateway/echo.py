"""The built-in ``local/echo`` model: answers when no provider key is configured.

It is a litellm ``CustomLLM``, so it runs through the same Router, usage and
header path as a real provider. Its answers say plainly that no LLM produced them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import litellm
from litellm.llms.custom_llm import CustomLLM
from litellm.types.utils import GenericStreamingChunk, ModelResponse

from core.clock import Clock

NOTICE = "[local/echo: no LLM provider is configured; set DASHSCOPE_API_KEY or add models to aitp.yaml]"


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _answer(messages: list[dict[str, Any]]) -> str:
    return f"{NOTICE} {_last_user_text(messages)[:2000]}".rstrip()


def _usage(messages: list[dict[str, Any]], text: str) -> tuple[int, int]:
    prompt = litellm.token_counter(messages=messages)
    completion = litellm.token_counter(text=text, count_response_tokens=True)
    return prompt, completion


class EchoLLM(CustomLLM):
    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock

    async def acompletion(self, *args: Any, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        messages: list[dict[str, Any]] = kwargs["messages"]
        text = _answer(messages)
        prompt, completion = _usage(messages, text)
        response: ModelResponse = kwargs["model_response"]
        response.choices[0].message.content = text  # type: ignore[union-attr]
        response.choices[0].finish_reason = "stop"
        response.model = "local/echo"
        response.created = int(self._clock.now().timestamp())
        response.usage = litellm.Usage(  # type: ignore[attr-defined]
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )
        return response

    async def astreaming(self, *args: Any, **kwargs: Any) -> AsyncIterator[GenericStreamingChunk]:  # type: ignore[override]
        messages: list[dict[str, Any]] = kwargs["messages"]
        text = _answer(messages)
        prompt, completion = _usage(messages, text)
        words = text.split(" ")
        for i, word in enumerate(words):
            last = i == len(words) - 1
            yield GenericStreamingChunk(
                text=word if i == 0 else " " + word,
                tool_use=None,
                is_finished=last,
                finish_reason="stop" if last else "",
                usage={"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
                if last
                else None,
                index=0,
            )
