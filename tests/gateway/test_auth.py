"""Keys, roles and project isolation through the public API."""

from __future__ import annotations

import asyncio
import secrets
import time

import httpx
import openai
import pytest

from tests.conftest import Server, ServerFactory

from .test_chat import client

MSG = [{"role": "user", "content": "hi"}]


def project_name() -> str:
    return "p-" + secrets.token_hex(4)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/models", "/api/keys", "/api/budgets", "/api/audit"])
def test_missing_and_bad_keys_are_401(gateway: Server, path: str) -> None:
    method = "POST" if path.endswith("completions") else "GET"
    missing = httpx.request(method, gateway.base_url + path, json={"model": "auto", "messages": MSG})
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    assert missing.json()["error"]["code"] == "missing_api_key"
    bad = httpx.request(
        method, gateway.base_url + path, json={}, headers={"authorization": "Bearer sk-aitp-not-a-real-key"}
    )
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        client(gateway, "sk-aitp-wrong").chat.completions.create(model="auto", messages=MSG)


def test_key_is_shown_once_and_stored_hashed(gateway: Server) -> None:
    project = project_name()
    key = gateway.new_key(project)
    assert key.startswith("sk-aitp-") and len(key) > 40
    listed = gateway.api("GET", f"/api/keys?project={project}").json()["items"]
    assert len(listed) == 1
    assert listed[0]["prefix"] == key[: len(listed[0]["prefix"])]
    assert key not in str(listed) and "hash" not in str(listed)
    assert client(gateway, key).chat.completions.create(model="auto", messages=MSG).choices


async def test_revocation_takes_effect_at_once_on_every_replica(gateway: Server, server_factory: ServerFactory) -> None:
    # A second replica on the same database, started with the same settings.
    config = __import__("yaml").safe_load((gateway.data_dir.parent / "aitp.yaml").read_text())
    replica = await asyncio.to_thread(
        server_factory, config, gateway.database_url, extra_env={"AITP_ADMIN_KEY": gateway.admin_key}
    )
    key = gateway.new_key(project_name())
    for server in (gateway, replica):
        assert client(server, key).chat.completions.create(model="auto", messages=MSG).choices
    key_id = gateway.api("GET", "/api/keys").json()["items"][-1]["id"]
    revoked = replica.api("DELETE", f"/api/keys/{key_id}", json={"reason": "leaked in a screenshot"})
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    for server in (gateway, replica):
        with pytest.raises(openai.AuthenticationError) as info:
            client(server, key).chat.completions.create(model="auto", messages=MSG)
        assert info.value.body["code"] == "key_revoked"
        assert "leaked in a screenshot" in info.value.body["message"]


def test_expired_key_is_refused_with_reason(gateway: Server) -> None:
    key = gateway.new_key(project_name(), expires_in_s=1)
    time.sleep(1.2)
    with pytest.raises(openai.AuthenticationError) as info:
        client(gateway, key).chat.completions.create(model="auto", messages=MSG)
    assert info.value.body["code"] == "key_expired"


def test_allowed_models(gateway: Server) -> None:
    key = gateway.new_key(project_name(), allowed_models=["turbo"])
    assert client(gateway, key).chat.completions.create(model="turbo", messages=MSG).choices
    with pytest.raises(openai.PermissionDeniedError) as info:
        client(gateway, key).chat.completions.create(model="plus", messages=MSG)
    assert info.value.body["code"] == "model_not_allowed" and info.value.body["param"] == "model"
    assert [m.id for m in client(gateway, key).models.list()] == ["turbo"]


def test_viewer_can_read_but_not_spend(gateway: Server) -> None:
    project = project_name()
    viewer = gateway.new_key(project, role="viewer")
    with pytest.raises(openai.PermissionDeniedError) as info:
        client(gateway, viewer).chat.completions.create(model="auto", messages=MSG)
    assert info.value.body["code"] == "role_forbidden"
    assert gateway.api("GET", "/api/budgets", key=viewer).status_code == 200
    assert gateway.api("GET", f"/api/budgets?project={project}", key=viewer).status_code == 200
    denied = gateway.api("POST", "/api/keys", key=viewer, json={"name": "x"})
    assert denied.status_code == 403


def test_roles_and_project_isolation(gateway: Server) -> None:
    team_a, team_b = project_name(), project_name()
    admin_a = gateway.new_key(team_a, role="admin")
    member_b = gateway.new_key(team_b)
    # a project admin manages its own project only
    created = gateway.api("POST", "/api/keys", key=admin_a, json={"name": "ci", "role": "member"})
    assert created.status_code == 201 and created.json()["project"] == team_a
    other = gateway.api("POST", "/api/keys", key=admin_a, json={"project": team_b, "name": "x"})
    assert other.status_code == 403
    assert gateway.api("POST", "/api/projects", key=admin_a, json={"name": project_name()}).status_code == 403
    # members cannot administer; nobody sees another project's keys, budgets or alerts
    assert gateway.api("POST", "/api/keys", key=member_b, json={"name": "x"}).status_code == 403
    for path in (f"/api/keys?project={team_a}", f"/api/budgets?project={team_a}", f"/api/alerts?project={team_a}"):
        response = gateway.api("GET", path, key=member_b)
        assert response.status_code in (403, 404), (path, response.text)
    budget = gateway.api("PUT", "/api/budgets", json={"project": team_a, "limit_tokens": 1000}).json()
    assert gateway.api("GET", f"/api/budgets/{budget['id']}/status", key=member_b).status_code == 404
    assert gateway.api("GET", f"/api/budgets/{budget['id']}/status", key=admin_a).status_code == 200
    projects = gateway.api("GET", "/api/projects", key=member_b).json()["items"]
    assert [p["id"] for p in projects] == [team_b]


def test_admin_actions_are_audited(gateway: Server) -> None:
    project = project_name()
    gateway.new_key(project)
    gateway.api("PUT", "/api/budgets", json={"project": project, "limit_usd": 5, "period": "day"})
    entries = gateway.api("GET", f"/api/audit?project={project}").json()["items"]
    actions = [e["action"] for e in entries]
    assert {"project.create", "key.create", "budget.create"} <= set(actions)
    assert all(e["actor"] == "admin-env" for e in entries)
    assert all("sk-aitp-" not in str(e["detail"]) for e in entries)


@pytest.mark.parametrize(
    ("method", "path", "body", "param"),
    [
        ("POST", "/api/projects", {"name": "Bad Name!"}, "name"),
        ("POST", "/api/projects", {"name": 7}, "name"),
        ("POST", "/api/projects", {}, "name"),
        ("POST", "/api/keys", {"name": "k", "role": "god"}, "role"),
        ("POST", "/api/keys", {"name": "k", "rpm": -1}, "rpm"),
        ("POST", "/api/keys", {"name": "k", "tpm": "lots"}, "tpm"),
        ("POST", "/api/keys", {"name": "k", "allowed_models": "turbo"}, "allowed_models"),
        ("POST", "/api/keys", {"name": "k", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ("POST", "/api/keys", {"name": "k", "colour": "red"}, "colour"),
        ("PUT", "/api/budgets", {"project": "default", "limit_tokens": -5}, "limit_tokens"),
        ("PUT", "/api/budgets", {"project": "default", "limit_usd": "ten"}, "limit_usd"),
        ("PUT", "/api/budgets", {"project": "default", "limit_tokens": 5, "scope": "planet"}, "scope"),
        ("PUT", "/api/budgets", {"project": "default", "limit_tokens": 5, "period": "week"}, "period"),
        ("PUT", "/api/budgets", {"project": "default", "limit_tokens": 5, "action": "explode"}, "action"),
        ("PUT", "/api/budgets", {"project": "default", "limit_tokens": 5, "thresholds": [1.5]}, "thresholds"),
        ("PUT", "/api/budgets", {"project": "default"}, "limit_tokens"),
        ("PUT", "/api/budgets", {"project": "default", "limit_tokens": 5, "scope": "user"}, "scope_id"),
        ("GET", "/api/audit?limit=-1", None, "limit"),
        ("GET", "/api/alerts?offset=abc", None, "offset"),
    ],
)
def test_bad_admin_input_is_400_naming_the_field(
    gateway: Server, method: str, path: str, body: dict | None, param: str
) -> None:
    before = admin_state(gateway)
    response = gateway.api(method, path, json=body) if body is not None else gateway.api(method, path)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, error
    assert param in error["message"], error
    assert admin_state(gateway) == before, "the refused request created or changed something"


def admin_state(server: Server) -> dict[str, object]:
    """Everything an admin request could create or change, as the API lists it."""
    state: dict[str, object] = {}
    with httpx.Client(base_url=server.base_url, headers=server.admin_headers, timeout=30) as http:
        for path in ("/api/projects", "/api/keys", "/api/budgets", "/api/audit?limit=20"):
            response = http.get(path)
            assert response.status_code == 200, response.text
            state[path] = response.json()["items"]
    return state


def test_admin_endpoints_reject_malformed_json(gateway: Server) -> None:
    response = httpx.post(
        f"{gateway.base_url}/api/keys",
        content=b"{not json",
        headers={**gateway.admin_headers, "content-type": "application/json"},
    )
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]


def test_unknown_ids_are_404(gateway: Server) -> None:
    assert gateway.api("DELETE", "/api/keys/key_nope").status_code == 404
    assert gateway.api("GET", "/api/budgets/bud_nope/status").status_code == 404
    response = gateway.api("POST", "/api/keys", json={"project": "no-such-project", "name": "k"})
    assert response.status_code == 404
