"""Every error comes back in OpenAI's shape with the right status, never a traceback."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import Server
from tests.fakes.llm_upstream import FakeUpstream, Reply

from .test_chat import USAGE_BY_ID, client


def post(server: Server, body: bytes | str, headers: dict[str, str] | None = None) -> httpx.Response:
    data = body.encode() if isinstance(body, str) else body
    return httpx.post(
        f"{server.v1}/chat/completions",
        content=data,
        headers={"content-type": "application/json", **server.admin_headers, **(headers or {})},
        timeout=20,
    )


def assert_error(response: httpx.Response, status: int, type_: str, code: str, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == type_
    assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    assert "Traceback" not in response.text
    assert response.headers["x-request-id"]
    return error


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ('{"model": "auto", "messages": [', None, "not valid JSON"),
        ("", None, "empty"),
        ("[1, 2]", None, "JSON object"),
        ('{"model": "auto"}', "messages", "'messages' is required"),
        ('{"messages": [{"role": "user", "content": "x"}]}', "model", "'model' is required"),
        ('{"model": "auto", "messages": []}', "messages", "at least 1"),
        ('{"model": "auto", "messages": "hi"}', "messages", "messages"),
        ('{"model": "auto", "messages": [{"role": "robot", "content": "x"}]}', "messages[0].role", "role"),
        (
            '{"model": "auto", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}',
            "temperature",
            "temperature",
        ),
        (
            '{"model": "auto", "messages": [{"role": "user", "content": "x"}], "max_tokens": -5}',
            "max_tokens",
            "max_tokens",
        ),
        (
            '{"model": "auto", "messages": [{"role": "user", "content": "x"}], "stream": "yes please"}',
            "stream",
            "stream",
        ),
        (
            '{"model": "auto", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}}',
            "response_format.type",
            "response_format",
        ),
    ],
)
def test_bad_bodies_are_400_naming_the_field(gateway: Server, body: str, param: str | None, words: str) -> None:
    error = assert_error(post(gateway, body), 400, "invalid_request_error", "invalid_request", param)
    assert words in error["message"]


def test_sdk_sees_bad_request(gateway: Server) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(gateway).chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "x"}], temperature=9
        )
    assert info.value.status_code == 400 and info.value.body["param"] == "temperature"


def test_unknown_model_is_404(gateway: Server) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client(gateway).chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert info.value.body["code"] == "model_not_found"
    assert info.value.body["param"] == "model"
    assert "auto, turbo, plus" in info.value.body["message"]


def test_body_over_limit_is_413(gateway: Server) -> None:
    big = '{"model": "auto", "messages": [{"role": "user", "content": "' + "x" * (1024 * 1024 + 10) + '"}]}'
    assert_error(post(gateway, big), 413, "invalid_request_error", "request_too_large")


def test_chunked_body_over_limit_is_413(gateway: Server) -> None:
    def chunks():
        yield b'{"model": "auto", "messages": [{"role": "user", "content": "'
        for _ in range(300):
            yield b"y" * 4096
        yield b'"}]}'

    response = httpx.post(f"{gateway.v1}/chat/completions", content=chunks(), headers=gateway.admin_headers, timeout=20)
    assert_error(response, 413, "invalid_request_error", "request_too_large")


def test_unknown_route_and_method(gateway: Server) -> None:
    h = gateway.admin_headers
    assert_error(httpx.get(f"{gateway.v1}/nope", headers=h), 404, "invalid_request_error", "not_found")
    assert_error(
        httpx.get(f"{gateway.v1}/chat/completions", headers=h), 405, "invalid_request_error", "method_not_allowed"
    )


async def test_upstream_5xx_after_retries_is_502(gateway: Server, fake: FakeUpstream) -> None:
    fake.set_default("qwen-turbo", Reply(status=500, error_message="boom"))
    with pytest.raises(openai.APIStatusError) as info:
        client(gateway).chat.completions.create(model="turbo", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502
    assert info.value.body["type"] == "upstream_error"
    assert len(fake.requests_for("qwen-turbo")) == 2, "one try and one retry (num_retries: 1)"
    rid = info.value.response.headers["x-request-id"]
    [row] = await gateway.wait_rows(USAGE_BY_ID, rid=rid)
    assert row["status"] == "error" and row["http_status"] == 502 and row["error_type"] == "upstream_failed"


def test_malformed_upstream_output_is_502(gateway: Server, fake: FakeUpstream) -> None:
    fake.set_default("qwen-turbo", Reply(malformed=True))
    with pytest.raises(openai.APIStatusError) as info:
        client(gateway).chat.completions.create(model="turbo", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502


def test_upstream_timeout_is_504(gateway: Server, fake: FakeUpstream) -> None:
    fake.set_default("qwen-turbo", Reply(hang_s=4))
    with pytest.raises(openai.APIStatusError) as info:
        client(gateway).chat.completions.create(model="turbo", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 504
    assert info.value.body["code"] == "upstream_timeout"


def test_plus_failure_falls_back_to_turbo(gateway: Server, fake: FakeUpstream) -> None:
    fake.set_default("qwen-plus", Reply(status=503, error_message="overloaded"))
    fake.script("qwen-turbo", Reply(content="served by turbo"))
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="plus", messages=[{"role": "user", "content": "x"}]
    )
    assert raw.parse().choices[0].message.content == "served by turbo"
    assert raw.headers["x-aitp-model"] == "dashscope/qwen-turbo"
    assert raw.headers["x-aitp-tier"] == "turbo"
    assert raw.headers["x-aitp-route-reason"] == "explicit_tier+fallback_plus_to_turbo"
    assert len(fake.requests_for("qwen-plus")) >= 2


def test_upstream_rate_limit_is_429(gateway: Server, fake: FakeUpstream) -> None:
    fake.set_default("qwen-turbo", Reply(status=429, error_message="slow down"))
    with pytest.raises(openai.RateLimitError) as info:
        client(gateway).chat.completions.create(model="turbo", messages=[{"role": "user", "content": "x"}])
    assert info.value.body["code"] == "upstream_rate_limited"


def test_upstream_error_mid_stream_ends_with_error_event(gateway: Server, fake: FakeUpstream) -> None:
    fake.script("qwen-turbo", Reply(content="a b c d e f g h", chunks=8, break_after_chunks=3))
    with httpx.stream(
        "POST",
        f"{gateway.v1}/chat/completions",
        json={"model": "turbo", "stream": True, "messages": [{"role": "user", "content": "x"}]},
        headers=gateway.admin_headers,
        timeout=20,
    ) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert '"error"' in lines[-2]
