"""Relays an upstream stream to the client as server-sent events, and accounts for it.

Usage comes from the upstream's final usage chunk (aitp always asks for it).
If the client disconnects, the upstream call is closed at once and the call is
charged for what was generated so far; if the upstream never sent usage, the
tokens are counted locally.

The time spent waiting for each upstream chunk (the client library's parsing
of it included) is added to ``usage.upstream_ms``; the time spent handing a
chunk to a slow client is not, so it counts as the gateway's own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import orjson

from .engine import Engine, Served
from .usage import Usage

log = logging.getLogger("aitp.gateway.stream")
DONE = b"data: [DONE]\n\n"


def _event(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


class StreamRelay:
    def __init__(
        self,
        *,
        stream: Any,
        engine: Engine,
        served: Served,
        usage: Usage,
        messages: list[dict[str, Any]],
        client_wants_usage: bool,
        on_done: Callable[[], Awaitable[None]],
    ) -> None:
        self._stream = stream
        self._llm = engine
        self._served = served
        self._usage = usage
        self._messages = messages
        self._client_wants_usage = client_wants_usage
        self._on_done = on_done
        self._text: list[str] = []
        self._got_usage = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._relay()

    async def _relay(self) -> AsyncIterator[bytes]:
        usage = self._usage
        # The stream is consumed in the response's own task: litellm's end-of-stream logging runs here.
        self._llm.mark_internal()
        try:
            chunks = aiter(self._stream)
            while True:
                waiting = time.perf_counter()
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                finally:
                    usage.upstream_ms += (time.perf_counter() - waiting) * 1000
                out = self._observe(chunk)
                if out is not None:
                    yield out
            yield DONE
        except (asyncio.CancelledError, GeneratorExit):
            usage.status = "client_disconnected"
            usage.http_status = 499
            raise
        except Exception as exc:
            error = self._llm.map_error(exc)
            usage.status = "error"
            usage.http_status = error.status
            usage.error_type = error.code
            log.warning("upstream stream failed: %s", error.message, extra={"request_id": usage.request_id})
            yield _event(orjson.dumps(error.body()))
            yield DONE
        finally:
            # Shielded: after a disconnect the task is cancelled, but the upstream must be
            # closed and the tokens generated so far charged.
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()
                self._settle()
                await self._on_done()

    def _observe(self, chunk: Any) -> bytes | None:
        for choice in chunk.choices or ():
            delta = getattr(choice, "delta", None)
            content = getattr(delta, "content", None)
            if content:
                self._text.append(content)
        chunk_usage = getattr(chunk, "usage", None)
        if chunk_usage is not None and (chunk_usage.prompt_tokens or chunk_usage.completion_tokens):
            self._got_usage = True
            self._usage.prompt_tokens = int(chunk_usage.prompt_tokens or 0)
            self._usage.completion_tokens = int(chunk_usage.completion_tokens or 0)
            self._usage.cost_usd = self._llm.price(self._served.entry).cost(
                self._usage.prompt_tokens, self._usage.completion_tokens
            )
            data = orjson.loads(chunk.model_dump_json(exclude_none=True))
            if not self._client_wants_usage:
                data.pop("usage", None)
                if not data.get("choices"):
                    return None
            else:
                data["aitp"] = {
                    "cost_usd": round(self._usage.cost_usd, 10),
                    "model": self._served.entry.label,
                    "tier": self._usage.tier,
                    "route_reason": self._usage.route_reason,
                }
            return _event(orjson.dumps(data))
        if not chunk.choices:
            return None
        return _event(chunk.model_dump_json(exclude_none=True).encode())

    def _settle(self) -> None:
        """Count locally what the upstream did not report (a cut-off stream is charged for what came)."""
        if self._got_usage:
            return
        usage = self._usage
        try:
            usage.prompt_tokens = self._llm.count_tokens(self._messages)
            usage.completion_tokens = self._llm.count_text_tokens("".join(self._text)) if self._text else 0
        except Exception:
            log.exception("counting tokens of an unfinished stream failed", extra={"request_id": usage.request_id})
        usage.cost_usd = self._llm.price(self._served.entry).cost(usage.prompt_tokens, usage.completion_tokens)
