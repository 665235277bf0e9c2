"""A fake OpenAI-compatible LLM upstream: a real HTTP server on 127.0.0.1.

Tests and benchmarks point aitp's deployments at it (``api_base``). Each model
name has a queue of scripted replies; when the queue is empty the model's
default reply is used. A reply can carry content, tool calls, usage, latency,
an HTTP error, malformed output, a hang (for timeouts) or a stream that breaks.

Control it in-process (``FakeUpstream.script``) or over HTTP
(``POST /_control/script``, ``POST /_control/reset``, ``GET /_control/requests``)
when it runs as a separate process (``python -m tests.fakes.llm_upstream``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Reply:
    """One scripted answer. Fields left at their defaults give a plain echo."""

    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    status: int = 200
    error_message: str = "scripted upstream error"
    malformed: bool = False  # body (or stream chunk) that is not valid JSON
    hang_s: float = 0.0  # sleep before answering (timeouts)
    delay_ms: float | None = None  # overrides the server latency for this reply
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # A provider-side system prompt: billed as prompt tokens, never seen in the request, so the
    # reported usage is above anything the gateway could count (and reserve) beforehand.
    system_prompt_tokens: int = 0
    chunks: int = 4  # stream: number of content chunks
    chunk_delay_ms: float = 0.0
    break_after_chunks: int | None = None  # stream: drop the connection after N chunks
    finish_reason: str = "stop"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        return cls(**data)


@dataclass
class FakeState:
    latency_ms: float = 0.0
    scripts: dict[str, deque[Reply]] = field(default_factory=dict)
    defaults: dict[str, Reply] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    # Every call to a model route, with the credential it carried: (path, authorization header, body).
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    record: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    cancelled: int = 0  # streams whose client went away before the end

    def next_reply(self, model: str) -> Reply:
        with self.lock:
            queue = self.scripts.get(model)
            if queue:
                return queue.popleft()
            return self.defaults.get(model) or self.defaults.get("*") or Reply()


def _words(text: str) -> int:
    return max(1, len(text.split()))


def _prompt_text(body: dict[str, Any]) -> str:
    parts: list[str] = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return " ".join(parts)


def _last_user(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


class FakeUpstream:
    """The fake server; ``start()`` runs it on a free port in a thread."""

    def __init__(self, latency_ms: float = 0.0, record: bool = True) -> None:
        self.state = FakeState(latency_ms=latency_ms, record=record)
        self.app = self._build_app()
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # --- control -----------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, model: str, *replies: Reply) -> None:
        with self.state.lock:
            self.state.scripts.setdefault(model, deque()).extend(replies)

    def set_default(self, model: str, reply: Reply) -> None:
        with self.state.lock:
            self.state.defaults[model] = reply

    def reset(self) -> None:
        with self.state.lock:
            self.state.scripts.clear()
            self.state.defaults.clear()
            self.state.requests.clear()
            self.state.calls.clear()
            self.state.cancelled = 0

    def requests_for(self, model: str) -> list[dict[str, Any]]:
        with self.state.lock:
            return [r for r in self.state.requests if r.get("model") == model]

    @property
    def calls(self) -> list[tuple[str, str, dict[str, Any]]]:
        with self.state.lock:
            return list(self.state.calls)

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.requests)

    # --- lifecycle ---------------------------------------------------------
    def start(self, port: int = 0) -> FakeUpstream:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        server = self._server
        self._thread = threading.Thread(target=lambda: server.run(sockets=[sock]), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake upstream did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    # --- HTTP --------------------------------------------------------------
    def _build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/_control/script", self._control_script, methods=["POST"]),
                Route("/_control/reset", self._control_reset, methods=["POST"]),
                Route("/_control/requests", self._control_requests, methods=["GET"]),
                Route("/_control/stats", self._control_stats, methods=["GET"]),
            ]
        )

    def _note_call(self, request: Request, body: dict[str, Any]) -> None:
        if self.state.record:
            with self.state.lock:
                self.state.calls.append((request.url.path, request.headers.get("authorization", ""), body))

    async def _control_script(self, request: Request) -> Response:
        data = await request.json()
        replies = [Reply.from_dict(r) for r in data.get("replies", [])]
        if replies:
            self.script(data["model"], *replies)
        if "default" in data:
            self.set_default(data["model"], Reply.from_dict(data["default"]))
        if "latency_ms" in data:
            self.state.latency_ms = float(data["latency_ms"])
        return JSONResponse({"ok": True})

    async def _control_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})

    async def _control_requests(self, request: Request) -> Response:
        return JSONResponse(self.requests)

    async def _control_stats(self, request: Request) -> Response:
        return JSONResponse({"in_flight": self.state.in_flight, "cancelled": self.state.cancelled})

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": []})

    async def _embeddings(self, request: Request) -> Response:
        body = await request.json()
        self._note_call(request, body)
        # Only the delay of a scripted reply (or the server latency) applies: an embedding has no content to script.
        reply = self.state.next_reply(str(body.get("model", "")))
        delay = self.state.latency_ms if reply.delay_ms is None else reply.delay_ms
        if delay:
            await asyncio.sleep(delay / 1000)
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = []
        for i, item in enumerate(items):
            digest = hashlib.sha256(str(item).encode()).digest()
            vector = [(b - 128) / 128 for b in digest[:16]]
            data.append({"object": "embedding", "index": i, "embedding": vector})
        tokens = sum(_words(str(x)) for x in items)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _chat(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            return JSONResponse({"error": {"message": "bad json"}}, status_code=400)
        model = str(body.get("model", ""))
        self._note_call(request, body)
        if self.state.record:
            with self.state.lock:
                self.state.requests.append(body)
        reply = self.state.next_reply(model)
        delay = self.state.latency_ms if reply.delay_ms is None else reply.delay_ms
        if delay:
            await asyncio.sleep(delay / 1000)
        if reply.hang_s:
            await asyncio.sleep(reply.hang_s)
        if reply.status != 200:
            return JSONResponse(
                {"error": {"message": reply.error_message, "type": "upstream_error", "code": reply.status}},
                status_code=reply.status,
            )
        content = reply.content
        if content is None and reply.tool_calls is None:
            content = f"fake {model}: {_last_user(body)[:200]}"
        prompt_tokens = reply.prompt_tokens if reply.prompt_tokens is not None else _words(_prompt_text(body))
        prompt_tokens += reply.system_prompt_tokens
        completion_tokens = reply.completion_tokens if reply.completion_tokens is not None else _words(content or "x")
        cap = body.get("max_tokens") or body.get("max_completion_tokens")
        finish_reason = reply.finish_reason
        if isinstance(cap, int) and completion_tokens > cap:
            # A real model stops at max_tokens.
            completion_tokens, finish_reason = cap, "length"
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                self._stream(request, completion_id, model, content or "", reply, usage, include_usage),
                media_type="text/event-stream",
            )
        if reply.malformed:
            return Response(b'{"id": "broken", "choices": [', media_type="application/json")
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reply.tool_calls is not None:
            message["tool_calls"] = reply.tool_calls
        n = int(body.get("n") or 1)
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": i,
                        "message": message,
                        "finish_reason": "tool_calls" if reply.tool_calls else finish_reason,
                    }
                    for i in range(n)
                ],
                "usage": usage,
            }
        )

    async def _stream(
        self,
        request: Request,
        completion_id: str,
        model: str,
        content: str,
        reply: Reply,
        usage: dict[str, int],
        include_usage: bool,
    ) -> AsyncIterator[bytes]:
        base = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        pieces = _split(content, reply.chunks)
        self.state.in_flight += 1
        finished = False
        try:
            first = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
            yield _sse(first)
            for i, piece in enumerate(pieces):
                if reply.break_after_chunks is not None and i >= reply.break_after_chunks:
                    raise ConnectionResetError("scripted break")
                if reply.chunk_delay_ms:
                    await asyncio.sleep(reply.chunk_delay_ms / 1000)
                if reply.malformed and i == len(pieces) // 2:
                    yield b"data: {not json\n\n"
                    continue
                yield _sse({**base, "choices": [{"index": 0, "delta": {"content": piece}}]})
            yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason}]})
            if include_usage:
                yield _sse({**base, "choices": [], "usage": usage})
            yield b"data: [DONE]\n\n"
            finished = True
        finally:
            self.state.in_flight -= 1
            if not finished:
                self.state.cancelled += 1


def _split(content: str, chunks: int) -> list[str]:
    chunks = max(1, chunks)
    size = max(1, -(-len(content) // chunks))
    return [content[i : i + size] for i in range(0, len(content), size)] or [""]


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="fake OpenAI-compatible upstream")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--no-record", action="store_true", help="do not keep request bodies (load tests)")
    args = parser.parse_args()
    fake = FakeUpstream(latency_ms=args.latency_ms, record=not args.no_record)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    print(f"PORT {port}", flush=True)  # noqa: T201 - the parent reads the port from stdout
    config = uvicorn.Config(fake.app, log_level="warning", lifespan="off", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
