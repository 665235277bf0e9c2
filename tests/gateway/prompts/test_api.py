"""The registry's REST API: publish, versions, labels, rollback, diff, render, and who may do what."""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets

import httpx
import pytest

from tests.conftest import Server

from .conftest import publish, published, spec, unique


def test_publish_numbers_versions_and_same_content_returns_the_existing_one(prompt_server: Server) -> None:
    name = unique()
    first = publish(prompt_server, spec(name))
    assert first.status_code == 201, first.text
    assert first.json()["version"] == 1 and first.json()["created"] is True
    again = publish(prompt_server, spec(name))
    assert again.status_code == 200
    assert again.json()["version"] == 1 and again.json()["created"] is False
    assert again.json()["content_hash"] == first.json()["content_hash"]
    second = publish(prompt_server, spec(name, "Write more about {{ topic }}."))
    assert second.status_code == 201 and second.json()["version"] == 2
    shown = prompt_server.api("GET", f"/api/prompts/{name}").json()
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    assert shown["latest_version"] == 2


def test_yaml_publish_keeps_the_text_and_comments_do_not_make_a_version(prompt_server: Server) -> None:
    name = unique()
    text = (
        f"# the first comment\nname: {name}\ntemplate:\n  - role: user\n    content: |\n      Say hi\n"
        "variables: {type: object}\n"
    )
    created = publish(prompt_server, text)
    assert created.status_code == 201, created.text
    full = prompt_server.api("GET", f"/api/prompts/{name}/versions/1").json()
    assert full["yaml"] == text and full["spec"]["template"][0]["content"] == "Say hi\n"
    recommented = publish(prompt_server, text.replace("the first comment", "another comment"))
    assert recommented.status_code == 200 and recommented.json()["version"] == 1
    as_json = publish(prompt_server, {"name": name, "template": [{"role": "user", "content": "Say hi\n"}]})
    assert as_json.status_code == 200, "the same spec sent as JSON is the same content"


def test_first_version_becomes_production_and_later_ones_wait_for_a_move(prompt_server: Server) -> None:
    name = unique()
    published(prompt_server, spec(name))
    published(prompt_server, spec(name, "v2 {{ topic }}"))
    labels = {r["label"]: r for r in prompt_server.api("GET", f"/api/prompts/{name}").json()["labels"]}
    assert labels["production"]["version"] == 1 and labels["production"]["pinned"] is False
    listed = {p["name"]: p for p in prompt_server.api("GET", "/api/prompts").json()["items"]}
    assert listed[name]["latest_version"] == 2
    assert listed[name]["labels"] == {"production": {"version": 1, "weight": None}}


def test_labels_move_and_rollback_goes_back(prompt_server: Server) -> None:
    name = unique()
    for text in ("a {{ topic }}", "b {{ topic }}", "c {{ topic }}"):
        published(prompt_server, spec(name, text))
    moved = prompt_server.api("PUT", f"/api/prompts/{name}/labels/production", json={"version": 3})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["from_version"], moved.json()["to_version"]) == (1, 3)
    assert moved.json()["state"]["pinned"] is True and moved.json()["state"]["previous_version"] == 1
    back = prompt_server.api("POST", f"/api/prompts/{name}/rollback")
    assert back.status_code == 200, back.text
    assert (back.json()["from_version"], back.json()["to_version"]) == (3, 1)
    explicit = prompt_server.api("POST", f"/api/prompts/{name}/rollback", json={"version": 2})
    assert explicit.json()["to_version"] == 2
    rendered = prompt_server.api("POST", f"/api/prompts/{name}/render", json={"variables": {"topic": "x"}})
    assert rendered.json()["version"] == 2 and rendered.json()["messages"][1]["content"] == "b x"
    custom = prompt_server.api("PUT", f"/api/prompts/{name}/labels/staging-eu", json={"version": 3})
    assert custom.status_code == 200
    by_label = prompt_server.api(
        "POST", f"/api/prompts/{name}/render", json={"label": "staging-eu", "variables": {"topic": "x"}}
    )
    assert by_label.json()["version"] == 3


def test_rollback_without_history_and_label_rules(prompt_server: Server) -> None:
    name = unique()
    published(prompt_server, spec(name))
    nothing = prompt_server.api("POST", f"/api/prompts/{name}/rollback")
    assert nothing.status_code == 409 and "nothing to roll back to" in nothing.json()["error"]["message"]
    weight = prompt_server.api("PUT", f"/api/prompts/{name}/labels/production", json={"version": 1, "weight": 0.5})
    assert weight.status_code == 400 and weight.json()["error"]["param"] == "weight"
    too_heavy = prompt_server.api("PUT", f"/api/prompts/{name}/labels/canary", json={"version": 1, "weight": 1.5})
    assert too_heavy.status_code == 400 and too_heavy.json()["error"]["param"] == "weight"
    bad_label = prompt_server.api("PUT", f"/api/prompts/{name}/labels/Bad..Label", json={"version": 1})
    assert bad_label.status_code == 400 and bad_label.json()["error"]["param"] == "label"
    missing = prompt_server.api("PUT", f"/api/prompts/{name}/labels/canary", json={"version": 9})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "prompt_version_not_found"
    assert "versions 1 to 1" in missing.json()["error"]["message"]
    assert prompt_server.api("PUT", f"/api/prompts/{name}/labels/canary", json={"version": 1}).status_code == 200
    removed = prompt_server.api("DELETE", f"/api/prompts/{name}/labels/canary")
    assert removed.status_code == 200 and removed.json()["label"] == "canary"
    kept = prompt_server.api("DELETE", f"/api/prompts/{name}/labels/production")
    assert kept.status_code == 409 and "cannot be removed" in kept.json()["error"]["message"]


def test_unknown_prompt_version_and_label_are_404(prompt_server: Server) -> None:
    name = unique()
    published(prompt_server, spec(name))
    for method, path, body, code in [
        ("GET", "/api/prompts/no.such", None, "prompt_not_found"),
        ("GET", f"/api/prompts/{name}/versions/5", None, "prompt_version_not_found"),
        (
            "POST",
            f"/api/prompts/{name}/render",
            {"label": "nope", "variables": {"topic": "x"}},
            "prompt_label_not_found",
        ),
        ("POST", f"/api/prompts/{name}/rollback", {"label": "nope"}, "prompt_label_not_found"),
        ("GET", "/api/prompts/no.such/stats", None, "prompt_not_found"),
    ]:
        response = prompt_server.api(method, path, json=body) if body else prompt_server.api(method, path)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_published_versions_are_immutable(prompt_server: Server, method: str) -> None:
    name = unique()
    published(prompt_server, spec(name))
    response = prompt_server.api(method, f"/api/prompts/{name}/versions/1", json=spec(name, "changed {{ topic }}"))
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "version_immutable"
    assert f"{name}@1" in error["message"] and "publish a new version" in error["message"]
    full = prompt_server.api("GET", f"/api/prompts/{name}/versions/1").json()
    assert full["spec"]["template"][1]["content"] == "Write about {{ topic }}."


@pytest.mark.parametrize(
    "bad", ["../etc/passwd", "a/b.c", "a.b/c", "a\\b.c", "a..b", "single", "Upper.case", "a.b c", ".a.b", "a.b.", ""]
)
def test_names_with_path_characters_are_refused(prompt_server: Server, bad: str) -> None:
    response = publish(prompt_server, spec(bad))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "name"


def test_template_syntax_error_is_refused_with_its_line(prompt_server: Server) -> None:
    name = unique()
    body = spec(name, "line one\n{% if topic %}\nline three {{ topic }\n{% endif %}")
    response = publish(prompt_server, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "template[1].content" and error["code"] == "template_syntax_error"
    assert "line 3" in error["message"]
    text = (
        f"name: {name}\nvariables:\n  type: object\n  properties: {{topic: {{type: string}}}}\ntemplate:\n"
        "  - role: user\n    content: |\n      fine\n      {% for x in topic %}\n      {{ x }\n      {% endfor %}\n"
    )
    from_file = publish(prompt_server, text).json()["error"]
    assert "line 3 (line 10 of the file)" in from_file["message"], from_file
    unknown_filter = publish(prompt_server, spec(name, "{{ topic | shout }}")).json()["error"]
    assert unknown_filter["code"] == "template_syntax_error" and "shout" in unknown_filter["message"]
    assert prompt_server.api("GET", f"/api/prompts/{name}").status_code == 404, "nothing was stored"


@pytest.mark.parametrize(
    ("change", "param", "words"),
    [
        ({"template": [{"role": "user", "content": "{{ undeclared }}"}]}, "template[0].content", "'undeclared'"),
        ({"template": []}, "template", "at least 1"),
        ({"template": [{"role": "robot", "content": "x"}]}, "template[0].role", "role"),
        ({"tier": "gold"}, "tier", "tier"),
        ({"variables": {"type": "array"}}, "variables", "type 'object'"),
        ({"variables": {"type": "object", "properties": {"x": {"type": "colour"}}}}, "variables", "JSON schema"),
        ({"response_schema": {"type": 5}}, "response_schema", "JSON schema"),
        ({"colour": "red"}, "colour", "colour"),
    ],
)
def test_bad_specs_are_400_naming_the_field(prompt_server: Server, change: dict, param: str, words: str) -> None:
    response = publish(prompt_server, {**spec(unique()), **change})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param, error
    assert words in error["message"]


def test_bad_yaml_and_bodies(prompt_server: Server) -> None:
    broken = publish(prompt_server, "name: [unclosed\n")
    assert broken.status_code == 400 and "not valid YAML" in broken.json()["error"]["message"]
    listing = publish(prompt_server, "- just\n- a list\n")
    assert listing.status_code == 400 and "mapping" in listing.json()["error"]["message"]
    not_json = prompt_server.api("POST", "/api/prompts", content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]["message"]


def test_render_lists_every_bad_variable(prompt_server: Server) -> None:
    name = unique()
    published(prompt_server, {**spec(name), "variables": {**spec(name)["variables"], "additionalProperties": False}})
    response = prompt_server.api(
        "POST", f"/api/prompts/{name}/render", json={"variables": {"count": "three", "colour": "red"}}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_prompt_variables" and error["param"] == "variables"
    message = error["message"]
    assert "'variables.topic' is required" in message
    assert "'variables.count': 'three' is not of type 'integer'" in message
    assert "colour" in message
    both = prompt_server.api("POST", f"/api/prompts/{name}/render", json={"version": 1, "label": "production"})
    assert both.status_code == 400
    ok = prompt_server.api("POST", f"/api/prompts/{name}/render", json={"variables": {"topic": "登录"}})
    assert ok.status_code == 200
    assert ok.json()["messages"] == [
        {"role": "system", "content": "You write 3 short test ideas."},
        {"role": "user", "content": "Write about 登录."},
    ]


def test_the_sandbox_refuses_python_internals(prompt_server: Server) -> None:
    name = unique()
    published(prompt_server, spec(name, "{{ topic.__class__.__mro__[1].__subclasses__() }}"))
    response = prompt_server.api("POST", f"/api/prompts/{name}/render", json={"variables": {"topic": "x"}})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "prompt_render_failed" and "sandbox forbids" in error["message"]


def test_diff_of_two_versions(prompt_server: Server) -> None:
    name = unique()
    published(prompt_server, spec(name, "alpha {{ topic }}"))
    published(prompt_server, spec(name, "beta {{ topic }}"))
    diff = prompt_server.api("GET", f"/api/prompts/{name}/diff?from=1&to=2").json()
    assert diff["diff"].startswith(f"--- {name}@1\n+++ {name}@2\n")
    assert "-    content: alpha {{ topic }}\n" in diff["diff"] and "+    content: beta {{ topic }}\n" in diff["diff"]
    default = prompt_server.api("GET", f"/api/prompts/{name}/diff").json()
    assert (default["from"], default["to"]) == (1, 2) and default["diff"] == diff["diff"]
    same = prompt_server.api("GET", f"/api/prompts/{name}/diff?from=2&to=2").json()
    assert same["diff"] == ""
    assert prompt_server.api("GET", f"/api/prompts/{name}/diff?from=abc").status_code == 400


def test_only_the_server_admin_key_changes_prompts(prompt_server: Server) -> None:
    name = unique()
    published(prompt_server, spec(name))
    project = "pr-" + secrets.token_hex(3)
    keys = {role: prompt_server.new_key(project, role=role) for role in ("admin", "member", "viewer")}
    for role, key in keys.items():
        attempts = [
            publish(prompt_server, spec(unique()), key=key),
            prompt_server.api("PUT", f"/api/prompts/{name}/labels/canary", key=key, json={"version": 1}),
            prompt_server.api("POST", f"/api/prompts/{name}/rollback", key=key),
            prompt_server.api("DELETE", f"/api/prompts/{name}/labels/canary", key=key),
            prompt_server.api("PUT", f"/api/prompts/{name}/versions/1", key=key, json={}),
        ]
        for response in attempts:
            assert response.status_code == 403, (role, response.text)
            assert "server admin key" in response.json()["error"]["message"]
        # every valid key may read and render
        assert prompt_server.api("GET", "/api/prompts", key=key).status_code == 200
        assert prompt_server.api("GET", f"/api/prompts/{name}", key=key).status_code == 200
        rendered = prompt_server.api("POST", f"/api/prompts/{name}/render", key=key, json={"variables": {"topic": "x"}})
        assert rendered.status_code == 200, (role, rendered.text)
    assert httpx.get(f"{prompt_server.base_url}/api/prompts").status_code == 401


def test_admin_actions_are_audited(prompt_server: Server) -> None:
    name = unique()
    published(prompt_server, spec(name))
    published(prompt_server, spec(name, "v2 {{ topic }}"))
    prompt_server.api("PUT", f"/api/prompts/{name}/labels/canary", json={"version": 2, "weight": 0.1})
    prompt_server.api("PUT", f"/api/prompts/{name}/labels/production", json={"version": 2})
    prompt_server.api("POST", f"/api/prompts/{name}/rollback")
    prompt_server.api("DELETE", f"/api/prompts/{name}/labels/canary")
    entries = prompt_server.api("GET", "/api/audit?limit=1000").json()["items"]
    mine = [e for e in reversed(entries) if e["target"] in (name, f"{name}@1", f"{name}@2")]
    assert [(e["action"], e["target"]) for e in mine] == [
        ("prompt.publish", f"{name}@1"),
        ("prompt.label", name),
        ("prompt.publish", f"{name}@2"),
        ("prompt.label", name),
        ("prompt.label", name),
        ("prompt.rollback", name),
        ("prompt.label.delete", name),
    ]
    assert all(e["actor"] == "admin-env" and e["actor_role"] == "root" and e["request_id"] for e in mine)
    details = [e["detail"] for e in mine]
    assert details[1] == {"label": "production", "from": None, "to": 1, "revision": 1}
    assert details[3] == {"label": "canary", "from": None, "to": 2, "revision": 1, "weight": 0.1}
    assert details[4]["from"] == 1 and details[4]["to"] == 2
    assert details[5] == {"label": "production", "from": 2, "to": 1, "revision": 3}


async def test_concurrent_label_moves_lose_no_update(prompt_server: Server) -> None:
    name = unique()
    for i in range(5):
        published(prompt_server, spec(name, f"v{i + 1} {{{{ topic }}}}"))
    rng = random.Random(3)
    targets = [rng.randint(1, 5) for _ in range(30)]
    async with httpx.AsyncClient(timeout=60, headers=prompt_server.admin_headers) as http:
        responses = await asyncio.gather(
            *[
                http.put(f"{prompt_server.base_url}/api/prompts/{name}/labels/production", json={"version": v})
                for v in targets
            ]
        )
    assert [r.status_code for r in responses] == [200] * len(targets), [
        r.text for r in responses if r.status_code >= 300
    ]
    entries = prompt_server.api("GET", "/api/audit?limit=1000").json()["items"]
    chain = sorted(
        (e["detail"] for e in entries if e["target"] == name and e["action"] == "prompt.label"),
        key=lambda d: d["revision"],
    )
    # revision 1 is the label's creation at publish; then one revision per move, none lost or repeated
    assert [d["revision"] for d in chain] == list(range(1, len(targets) + 2))
    for before, after in itertools.pairwise(chain):
        assert after["from"] == before["to"], "each move replaced exactly the version the previous one set"
    assert sorted(d["to"] for d in chain[1:]) == sorted(targets)
    final = {r["label"]: r for r in prompt_server.api("GET", f"/api/prompts/{name}").json()["labels"]}["production"]
    assert final["version"] == chain[-1]["to"] and final["revision"] == len(targets) + 1


async def test_concurrent_publishes_number_versions_without_gaps(prompt_server: Server) -> None:
    name = unique()
    body = spec(name)
    async with httpx.AsyncClient(timeout=60, headers=prompt_server.admin_headers) as http:
        same = await asyncio.gather(*[http.post(f"{prompt_server.base_url}/api/prompts", json=body) for _ in range(12)])
        different = await asyncio.gather(
            *[
                http.post(f"{prompt_server.base_url}/api/prompts", json=spec(name, f"variant {i} {{{{ topic }}}}"))
                for i in range(12)
            ]
        )
    assert sorted(r.status_code for r in same) == [200] * 11 + [201]
    assert {r.json()["version"] for r in same} == {1}
    assert all(r.status_code == 201 for r in different), [r.text for r in different]
    assert sorted(r.json()["version"] for r in different) == list(range(2, 14))
