"""Property: no endpoint answers 5xx, whatever a client sends, on SQLite and on PostgreSQL.

The app publishes no OpenAPI document, so the requests come from the pydantic
request models themselves: bodies are drawn from each model's JSON schema
(:func:`from_schema`, the subset pydantic emits), and some are then spoiled with hostile values (NUL,
integers past 64 bits, long or deeply nested values). Path, query and header
values are drawn from known ids and hostile text. Chat and embeddings are
fuzzed too; a 502/504 is accepted there only when the fake upstream was
really called (a valid request the upstream refused), never for input the
gateway should have refused itself.

Bounded for CI: a fixed seed (``derandomize``) and a few examples per endpoint.
"""

from __future__ import annotations

import asyncio
import json
import os
import string
from dataclasses import dataclass, field
from datetime import UTC
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from agents.kb.service import TextDocument
from agents.tasks.service import ReviewSpec, SubmitSpec
from agents.tasks.system import SleepInput
from agents.testcases.routes import BulkReview
from agents.testcases.service import ReviewBody
from core.identity.routes import KeySpec, ProjectSpec, RevokeSpec
from gateway.budgets.specs import BudgetSpec
from gateway.prompts.service import LabelSpec, RenderSpec, RollbackSpec
from gateway.prompts.spec import NAME_RE, PromptSpec
from gateway.schemas import ChatRequest, EmbeddingRequest
from tests.conftest import PostgresDatabases, Server, ServerFactory, gateway_config
from tests.fakes.llm_upstream import FakeUpstream

EXAMPLES = int(os.environ.get("AITP_FUZZ_EXAMPLES", "12"))  # more for a deeper local run
MODELS = st.sampled_from(["turbo", "plus", "auto", "qwen-turbo", "no-such-model"])
_CHAT = ChatRequest.model_json_schema()
_SLEEP = SleepInput.model_json_schema()
SLEEP_SCHEMA = {
    **_SLEEP,
    "properties": {**_SLEEP["properties"], "seconds": {"type": "number", "minimum": 0, "maximum": 0.05}},
}
MESSAGES = st.one_of(
    st.just([{"role": "user", "content": "hello"}]),
    st.deferred(lambda: from_schema(_CHAT["properties"]["messages"], _CHAT["$defs"])),
)
UPSTREAM = ("/v1/chat/completions", "/v1/embeddings")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    body: type[BaseModel] | None = None
    query: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    # Body fields drawn from a narrower strategy, so that some requests get past the first check.
    overrides: dict[str, st.SearchStrategy[Any]] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


# --- bodies from JSON schemas ----------------------------------------------------------------
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text()
)
any_json = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3), max_leaves=8
)


def _with_field(name: str, pair: tuple[dict[str, Any], Any]) -> dict[str, Any]:
    return {**pair[0], name: pair[1]}


def from_schema(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Values that meet a JSON schema as pydantic writes them ($defs, anyOf, enum, bounds, patterns)."""
    defs = schema.get("$defs", {}) if defs is None else defs
    if "$ref" in schema:
        return from_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in schema or "oneOf" in schema:
        return st.one_of([from_schema(s, defs) for s in schema.get("anyOf", schema.get("oneOf", []))])
    if "allOf" in schema:
        return from_schema(schema["allOf"][0], defs)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        if schema.get("format") == "date-time":
            return st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        short = st.text(min_size=low, max_size=max(low, min(high or 20, 20)))
        return short if high is None or high > 5000 else st.one_of(short, st.text(min_size=high, max_size=high))
    if kind == "integer":
        low = schema.get("minimum", schema.get("exclusiveMinimum", -(2**40) - 1) + 1)
        high = schema.get("maximum", schema.get("exclusiveMaximum", 2**40 + 1) - 1)
        return st.integers(min_value=low, max_value=high)
    if kind == "number":
        return st.floats(
            min_value=schema.get("minimum", schema.get("exclusiveMinimum")),
            max_value=schema.get("maximum", schema.get("exclusiveMaximum")),
            exclude_min="exclusiveMinimum" in schema,
            exclude_max="exclusiveMaximum" in schema,
            allow_nan=False,
            allow_infinity=False,
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = from_schema(schema.get("items", {}), defs)
        low = schema.get("minItems", 0)
        return st.lists(items, min_size=low, max_size=max(low, min(schema.get("maxItems", 3), 3)))
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        if not properties:
            return st.dictionaries(st.text(max_size=10), any_json, max_size=3)
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {k: from_schema(v, defs) for k, v in properties.items() if k in required},
            optional={k: from_schema(v, defs) for k, v in properties.items() if k not in required},
        )
    return any_json


# --- hostile values ------------------------------------------------------------------------------
EDGE_NUMBERS = [0, -1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, 1e300, -0.0]
EDGE_TEXT = ["", "\x00", "a\x00b", "9" * 30, str(2**63), "-1", "..", "a" * 300, "x" * 5000, "ü€😀", "%00", "NaN"]


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value} if depth % 2 else [value]
    return value


hostile_text = st.one_of(
    st.sampled_from(EDGE_TEXT),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=250, max_size=600),
)
hostile_value = st.one_of(
    hostile_text,
    st.sampled_from(EDGE_NUMBERS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.integers(min_value=40, max_value=300).map(nested),
    st.lists(hostile_text, max_size=3),
    st.dictionaries(hostile_text, hostile_text, max_size=3),
)
# Printable only: HTTP clients refuse control characters in header values themselves.
header_text = st.one_of(
    st.sampled_from(["0", "-1", str(2**63), str(2**64), "x" * 300, "k" * 5000, "1e9"]),
    st.text(alphabet=string.ascii_letters + string.digits + "-_.:/", min_size=1, max_size=300),
)


ENDPOINTS = [
    Endpoint("POST", "/api/projects", ProjectSpec),
    Endpoint("GET", "/api/projects"),
    Endpoint("POST", "/api/keys", KeySpec),
    Endpoint("GET", "/api/keys", query=("project",)),
    Endpoint("DELETE", "/api/keys/{key_id}", RevokeSpec),
    Endpoint("GET", "/api/audit", query=("project", "limit", "offset")),
    Endpoint("POST", "/api/budgets", BudgetSpec, overrides={"project": st.just("default")}),
    Endpoint("GET", "/api/budgets", query=("project",)),
    Endpoint("GET", "/api/budgets/{budget_id}/status"),
    Endpoint("DELETE", "/api/budgets/{budget_id}"),
    Endpoint("GET", "/api/alerts", query=("project", "limit", "offset")),
    Endpoint("GET", "/api/usage", query=("project", "from", "to", "group_by", "format", "model")),
    Endpoint("GET", "/api/usage/savings", query=("project", "from", "to")),
    Endpoint(
        "POST",
        "/api/tasks",
        SubmitSpec,
        headers=("idempotency-key",),
        # Short sleeps: a running task would hold up the server's shutdown.
        overrides={"kind": st.just("system.sleep"), "input": from_schema(SLEEP_SCHEMA)},
    ),
    Endpoint("GET", "/api/tasks", query=("status", "kind", "limit", "offset")),
    Endpoint("GET", "/api/tasks/stats"),
    Endpoint("GET", "/api/tasks/{task_id}"),
    Endpoint("POST", "/api/tasks/{task_id}/cancel"),
    Endpoint("POST", "/api/tasks/{task_id}/review", ReviewSpec),
    Endpoint("GET", "/api/tasks/{task_id}/events", query=("last_event_id",), headers=("last-event-id",)),
    Endpoint("GET", "/api/tasks/{task_id}/testcases", query=("format", "status", "layout", "lang")),
    Endpoint("POST", "/api/tasks/{task_id}/testcases/review", BulkReview),
    Endpoint("GET", "/api/testcases", query=("status", "task_id", "limit", "offset")),
    Endpoint("GET", "/api/testcases/{case_id}"),
    Endpoint("POST", "/api/testcases/{case_id}/review", ReviewBody),
    Endpoint("GET", "/api/automation/cases", query=("target", "limit", "offset")),
    Endpoint("GET", "/api/automation/cases/{case_id}"),
    Endpoint("GET", "/api/kb/documents", query=("limit", "offset", "source")),
    Endpoint("GET", "/api/kb/documents/{doc_id}", query=("include",)),
    Endpoint("DELETE", "/api/kb/documents/{doc_id}"),
    Endpoint("GET", "/api/kb/search", query=("q", "k", "source", "kind")),
    # Short texts: each stored document is embedded on the CPU.
    Endpoint("POST", "/api/kb/documents", TextDocument, overrides={"text": st.text(min_size=1, max_size=40)}),
    Endpoint("GET", "/api/prompts"),
    Endpoint("POST", "/api/prompts", PromptSpec, overrides={"name": st.from_regex(NAME_RE, fullmatch=True)}),
    Endpoint("GET", "/api/prompts/{name}"),
    Endpoint("GET", "/api/prompts/{name}/versions/{version}"),
    Endpoint("PUT", "/api/prompts/{name}/labels/{label}", LabelSpec),
    Endpoint("DELETE", "/api/prompts/{name}/labels/{label}"),
    Endpoint("POST", "/api/prompts/{name}/rollback", RollbackSpec),
    Endpoint("GET", "/api/prompts/{name}/diff", query=("from", "to")),
    Endpoint(
        "POST",
        "/api/prompts/{name}/render",
        RenderSpec,
        overrides={"version": st.sampled_from([None, 1]), "label": st.none(), "variables": st.just({"who": "x"})},
    ),
    Endpoint("GET", "/api/prompts/{name}/stats", query=("project", "from", "to")),
    Endpoint("GET", "/v1/models"),
    Endpoint(
        "POST",
        "/v1/chat/completions",
        ChatRequest,
        overrides={"model": MODELS, "prompt": st.none(), "messages": MESSAGES},
    ),
    Endpoint("POST", "/v1/embeddings", EmbeddingRequest, overrides={"model": st.just("text-embedding-v3")}),
]


def body_strategy(endpoint: Endpoint) -> st.SearchStrategy[Any]:
    assert endpoint.body is not None
    schema = endpoint.body.model_json_schema()
    shaped: st.SearchStrategy[Any] = from_schema(schema)
    # Only the required fields: the likeliest body to be valid, which then goes as far as the database.
    required = {k: v for k, v in schema.get("properties", {}).items() if k in schema.get("required", ())}
    minimal: st.SearchStrategy[Any] = from_schema({**schema, "properties": required}) if required else st.just({})
    for name, strategy in endpoint.overrides.items():
        shaped = st.tuples(shaped, strategy).map(partial(_with_field, name))
        minimal = st.tuples(minimal, strategy).map(partial(_with_field, name))
    fields = [*sorted(endpoint.body.model_fields), "unknown_field"]

    def spoil(args: tuple[dict[str, Any], str, Any]) -> dict[str, Any]:
        body, name, value = args
        return {**body, name: value}

    spoiled = st.tuples(shaped, st.sampled_from(fields), hostile_value).map(spoil)
    return st.one_of(minimal, shaped, spoiled, spoiled, st.dictionaries(hostile_text, hostile_value, max_size=4))


@dataclass(frozen=True)
class Known:
    """Ids that exist on the server, so that requests get past the 404s."""

    ids: dict[str, list[str]]


def path_value(known: Known, name: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(known.ids.get(name) or ["none"]), hostile_text.filter(bool))


def request_strategy(endpoint: Endpoint, known: Known) -> st.SearchStrategy[dict[str, Any]]:
    names = [part[1:-1] for part in endpoint.path.split("/") if part.startswith("{")]
    return st.fixed_dictionaries(
        {
            "path": st.fixed_dictionaries({n: path_value(known, n) for n in names}),
            "query": st.dictionaries(st.sampled_from(endpoint.query or ("x",)), hostile_text, max_size=3),
            "headers": st.dictionaries(st.sampled_from(endpoint.headers or ("x-fuzz",)), header_text, max_size=1),
            "body": body_strategy(endpoint) if endpoint.body is not None else st.none(),
        }
    )


# --- the servers ----------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def fuzzed(
    request: pytest.FixtureRequest, fake: FakeUpstream, server_factory: ServerFactory, pg_databases: PostgresDatabases
) -> tuple[Server, Known]:
    """A server of its own: fuzzing creates budgets and keys that must not change other tests' server."""
    url = await pg_databases.create() if request.param == "postgres" else None
    server = await asyncio.to_thread(server_factory, gateway_config(fake), url)
    task = server.api("POST", "/api/tasks", json={"kind": "system.sleep", "input": {"seconds": 0}}).json()
    prompt = {
        "name": "fuzz.prompt",
        "variables": {"type": "object", "properties": {"who": {"type": "string"}}},
        "template": [{"role": "user", "content": "hi {{ who }}"}],
    }
    assert server.api("POST", "/api/prompts", json=prompt).status_code in (200, 201)
    key = server.api("POST", "/api/keys", json={"name": "fuzz"}).json()
    budget = server.api("POST", "/api/budgets", json={"project": "default", "limit_usd": 1000}).json()
    ids = {
        "task_id": [task["id"]],
        "key_id": [key["id"]],
        "budget_id": [budget["id"]],
        "name": ["fuzz.prompt"],
        "version": ["1", "2"],
        "label": ["production", "canary"],
        "case_id": ["tc_missing"],
        "doc_id": ["doc_missing"],
    }
    return server, Known(ids)


@pytest.fixture(scope="module")
def http(fuzzed: tuple[Server, Known]) -> httpx.Client:
    server, _ = fuzzed
    return httpx.Client(base_url=server.base_url, headers=server.admin_headers, timeout=30)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_no_5xx(endpoint: Endpoint, fuzzed: tuple[Server, Known], http: httpx.Client, fake: FakeUpstream) -> None:
    _, known = fuzzed

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(call=request_strategy(endpoint, known))
    def check(call: dict[str, Any]) -> None:
        path = endpoint.path
        for name, value in call["path"].items():
            path = path.replace("{" + name + "}", quote(value, safe=""))
        headers = dict(call["headers"])
        content = None
        if call["body"] is not None:
            content = json.dumps(call["body"], allow_nan=False).encode()
            headers["content-type"] = "application/json"
        upstream_before = len(fake.requests)
        response = http.request(endpoint.method, path, params=call["query"], content=content, headers=headers)
        called_upstream = len(fake.requests) > upstream_before
        if endpoint.path in UPSTREAM and response.status_code in (502, 504) and called_upstream:
            return
        assert response.status_code < 500, (endpoint.method, path, call["query"], content, response.text[:400])
        if response.status_code >= 400:
            assert response.json()["error"]["message"], response.text

    check()
