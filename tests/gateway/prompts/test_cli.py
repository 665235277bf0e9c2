"""``aitp prompts …`` against a live server, and ``aitp prompts check`` offline."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.aitp.test_cli import REPO, aitp
from tests.conftest import Server

from .conftest import spec, unique, write_prompt


def env(server: Server) -> dict[str, str]:
    return {"AITP_URL": server.base_url, "AITP_ADMIN_KEY": server.admin_key}


def test_prompt_commands_against_a_live_server(prompt_server: Server, tmp_path: Path) -> None:
    e = env(prompt_server)
    name = unique("cli")
    path = write_prompt(tmp_path, spec(name, "first {{ topic }}"))
    created = aitp("prompts", "publish", str(path), env=e)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["version"] == 1
    again = aitp("prompts", "publish", str(path), env=e)
    assert again.returncode == 0 and f"already {name} version 1" in again.stderr
    write_prompt(tmp_path, spec(name, "second {{ topic }}"))
    assert json.loads(aitp("prompts", "publish", str(path), env=e).stdout)["version"] == 2

    listing = aitp("prompts", "list", env=e)
    assert f"{name}  v2  [production=v1]" in listing.stdout
    canary = aitp("prompts", "label", name, "canary", "--version", "2", "--weight", "0.2", env=e)
    assert canary.returncode == 0, canary.stderr
    assert json.loads(canary.stdout)["state"]["weight"] == 0.2
    assert "canary=v2 (20%)" in aitp("prompts", "list", env=e).stdout
    promoted = aitp("prompts", "label", name, "production", "--version", "2", env=e)
    assert json.loads(promoted.stdout)["to_version"] == 2
    rolled = aitp("prompts", "rollback", name, env=e)
    assert rolled.returncode == 0 and json.loads(rolled.stdout)["to_version"] == 1
    removed = aitp("prompts", "label", name, "canary", "--remove", env=e)
    assert removed.returncode == 0, removed.stderr

    shown = json.loads(aitp("prompts", "show", name, env=e).stdout)
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    text = aitp("prompts", "show", name, "--version", "1", "--yaml", env=e).stdout
    assert text == path.read_text().replace("second", "first")
    diff = aitp("prompts", "diff", name, env=e).stdout
    assert "-  content: first {{ topic }}" in diff and "+  content: second {{ topic }}" in diff

    variables = tmp_path / "vars.yaml"
    variables.write_text(yaml.safe_dump({"topic": "支付"}, allow_unicode=True))
    rendered = aitp("prompts", "render", name, "--vars", str(variables), "--var", "count=2", env=e)
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout == "--- system\nYou write 2 short test ideas.\n--- user\nfirst 支付\n"
    assert f"{name} version 1" in rendered.stderr
    as_json = json.loads(aitp("prompts", "render", name, "--version", "2", "--var", "topic=x", "--json", env=e).stdout)
    assert as_json["messages"][1]["content"] == "second x"
    stats = json.loads(aitp("prompts", "stats", name, env=e).stdout)
    assert [v["version"] for v in stats["versions"]] == [1, 2]

    bad = aitp("prompts", "render", name, "--var", "count=lots", env=e)
    assert bad.returncode == 1 and "'variables.topic' is required" in bad.stderr and "count" in bad.stderr
    nothing = aitp("prompts", "rollback", unique("cli"), env=e)
    assert nothing.returncode == 1 and "404" in nothing.stderr
    member = prompt_server.new_key()
    denied = aitp("prompts", "publish", str(path), env={**e, "AITP_ADMIN_KEY": member})
    assert denied.returncode == 1 and "403" in denied.stderr


def test_check_validates_files_offline(tmp_path: Path) -> None:
    shipped = aitp("prompts", "check", str(REPO / "prompts"))
    assert shipped.returncode == 0, shipped.stderr
    assert shipped.stdout.count("ok   ") >= 4 and "testcase.generate" in shipped.stdout
    write_prompt(tmp_path, spec("chk.fine"))
    (tmp_path / "chk.syntax.yaml").write_text(
        "name: chk.syntax\ntemplate:\n  - role: user\n    content: |\n      ok\n      {% if x %}\n"
    )
    (tmp_path / "chk.other.yaml").write_text("name: chk.renamed\ntemplate: [{role: user, content: hi}]\n")
    (tmp_path / "chk.shape.yaml").write_text("name: chk.shape\ntemplate: hello\n")
    (tmp_path / "chk.vars.yaml").write_text("name: chk.vars\ntemplate: [{role: user, content: '{{ who }}'}]\n")
    (tmp_path / "chk.yaml.yaml").write_text("name: [unclosed\n")
    result = aitp("prompts", "check", str(tmp_path))
    assert result.returncode == 1
    assert "ok   " in result.stdout and "chk.fine" in result.stdout
    errors = result.stderr
    assert "chk.syntax.yaml: template[0].content has a Jinja2 syntax error" in errors
    assert "at line 2 (line 6 of the file)" in errors, errors
    assert "chk.other.yaml: holds prompt 'chk.renamed'" in errors and "rename it to chk.renamed.yaml" in errors
    assert "chk.shape.yaml: invalid prompt spec: 'template'" in errors
    assert "chk.vars.yaml: template[0].content uses 'who', not declared in variables.properties" in errors
    assert "chk.yaml.yaml: the prompt is not valid YAML" in errors
