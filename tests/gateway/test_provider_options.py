"""No field a client sends can become a litellm option.

litellm reads many keyword arguments as its own options: ``api_base`` sends the
deployment's key to another server, ``api_key`` replaces it, ``num_retries``
holds a request, ``mock_response`` answers with no upstream call. The names are
read from litellm's own signatures at test time, so an upgrade that adds an
option is covered without editing this file.
"""

from __future__ import annotations

import inspect
import os
import socket
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from gateway.schemas import CHAT_UPSTREAM_PARAMS, EMBEDDING_UPSTREAM_PARAMS
from tests.conftest import Server
from tests.fakes.llm_upstream import FakeUpstream, Reply

# Fields aitp reads itself and never forwards.
CONSUMED = {"model", "prompt", "metadata", "stream", "stream_options"}
DEPLOYMENT_KEY = "Bearer test-key"


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def litellm_option_names() -> set[str]:
    """Every keyword argument of litellm's call entry points and of its Router."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm
    from litellm.router import Router
    from litellm.types.utils import all_litellm_params

    functions: list[Callable[..., Any]] = [
        litellm.completion,
        litellm.acompletion,
        litellm.embedding,
        litellm.aembedding,
        Router.__init__,
        Router.completion,
        Router.acompletion,
        Router.embedding,
        Router.aembedding,
    ]
    names: set[str] = set(all_litellm_params)
    for function in functions:
        for name, parameter in inspect.signature(function).parameters.items():
            if name != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                names.add(name)
    return names


def hostile_value(name: str, dead: str) -> Any:
    """A value that would visibly change the call if litellm saw it."""
    if name in {"api_base", "base_url", "proxy_base_url"}:
        return dead
    if name in {"num_retries", "max_retries", "max_fallbacks"}:
        return 8
    if name in {"mock_response", "mock_tool_calls"}:
        return "a free answer"
    if name == "timeout":
        return 0.001
    if name in {"fallbacks", "context_window_fallbacks", "content_policy_fallbacks"}:
        return [{"turbo": ["local-vllm"]}]
    return "sk-stolen" if "key" in name else "x"


OPTION_NAMES = sorted(litellm_option_names())


def test_litellm_still_has_the_dangerous_options() -> None:
    # If these vanished from the signatures, the tests below would prove nothing.
    assert {"api_base", "base_url", "api_key", "num_retries", "mock_response", "timeout"} <= set(OPTION_NAMES)
    assert len(OPTION_NAMES) > 100


def test_no_litellm_option_reaches_the_router_on_chat(gateway: Server, fake: FakeUpstream) -> None:
    key = gateway.new_key()
    dead = f"http://127.0.0.1:{_dead_port()}/v1"
    refused: list[str] = []
    with httpx.Client(base_url=gateway.v1, headers={"authorization": f"Bearer {key}"}, timeout=30) as http:
        for name in OPTION_NAMES:
            if name in CHAT_UPSTREAM_PARAMS or name in CONSUMED:
                continue
            body = {
                "model": "turbo",
                "messages": [{"role": "user", "content": "hello"}],
                name: hostile_value(name, dead),
            }
            response = http.post("/chat/completions", json=body)
            assert response.status_code == 400, (name, response.status_code, response.text[:300])
            error = response.json()["error"]
            assert error["param"] == name, (name, error)
            assert f"unknown field '{name}'" in error["message"]
            assert "Traceback" not in response.text
            refused.append(name)
        # Streams take the same path.
        response = http.post(
            "/chat/completions",
            json={"model": "turbo", "stream": True, "messages": [{"role": "user", "content": "hi"}], "api_base": dead},
        )
        assert response.status_code == 400 and response.json()["error"]["param"] == "api_base"
    assert {"api_base", "base_url", "api_key", "num_retries", "mock_response"} <= set(refused)
    assert fake.calls == [], "a refused request reached the upstream"


def test_no_litellm_option_reaches_the_router_on_embeddings(gateway: Server, fake: FakeUpstream) -> None:
    key = gateway.new_key()
    dead = f"http://127.0.0.1:{_dead_port()}/v1"
    with httpx.Client(base_url=gateway.v1, headers={"authorization": f"Bearer {key}"}, timeout=30) as http:
        for name in OPTION_NAMES:
            if name in EMBEDDING_UPSTREAM_PARAMS or name in CONSUMED:
                continue
            body = {"model": "text-embedding-v3", "input": "hello", name: hostile_value(name, dead)}
            response = http.post("/embeddings", json=body)
            assert response.status_code == 400, (name, response.status_code, response.text[:300])
            assert response.json()["error"]["param"] == name
    assert fake.calls == []


def test_openai_parameters_still_reach_the_deployment_with_its_own_key(gateway: Server, fake: FakeUpstream) -> None:
    key = gateway.new_key()
    client = openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0)
    completion = client.chat.completions.create(
        model="turbo",
        messages=[{"role": "user", "content": "hello"}],
        seed=7,
        presence_penalty=0.5,
        logprobs=False,
        user="alice",
        metadata={"ticket": "T-1"},
    )
    assert completion.choices[0].message.content
    [(path, auth, body)] = fake.calls
    assert path.endswith("/chat/completions") and auth == DEPLOYMENT_KEY
    assert body["seed"] == 7 and body["presence_penalty"] == 0.5 and body["user"] == "alice"
    assert "metadata" not in body, "aitp's metadata is consumed, not forwarded"


def test_a_deployment_extra_goes_only_into_the_provider_body(gateway: Server, fake: FakeUpstream) -> None:
    key = gateway.new_key()
    client = openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0)
    client.chat.completions.create(
        model="turbo", messages=[{"role": "user", "content": "hello"}], extra_body={"enable_search": True}
    )
    [(_, auth, body)] = fake.calls
    assert auth == DEPLOYMENT_KEY
    assert body["enable_search"] is True
    # A deployment without the extra refuses it by name, before any upstream call.
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="local-vllm", messages=[{"role": "user", "content": "hello"}], extra_body={"enable_search": True}
        )
    assert refused.value.body["param"] == "enable_search"  # type: ignore[index]
    assert "extra_params" in refused.value.message
    assert len(fake.calls) == 1


def test_a_hostile_field_cannot_buy_retries_against_a_failing_upstream(gateway: Server, fake: FakeUpstream) -> None:
    """The deployment's retry count (1 here) holds; the request cannot raise it."""
    key = gateway.new_key()
    fake.set_default("qwen-turbo", Reply(status=500))
    with httpx.Client(base_url=gateway.v1, headers={"authorization": f"Bearer {key}"}, timeout=30) as http:
        response = http.post(
            "/chat/completions", json={"model": "qwen-turbo", "messages": [{"role": "user", "content": "x"}]}
        )
        assert response.status_code == 502
        honest = len(fake.calls)
        response = http.post(
            "/chat/completions",
            json={"model": "qwen-turbo", "messages": [{"role": "user", "content": "x"}], "num_retries": 8},
        )
        assert response.status_code == 400
    assert len(fake.calls) == honest
