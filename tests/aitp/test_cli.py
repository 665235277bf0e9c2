"""The CLI: version, config check, and refusing bad settings at start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import Server

REPO = Path(__file__).resolve().parents[2]


def aitp(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AITP_") and k != "DASHSCOPE_API_KEY"}
    base["AITP_ADMIN_KEY"] = "sk-aitp-cli-test-Zq8rT1vWm3Np7Ks2Lx9Bd4Hf6Gj0Yc5E"
    return subprocess.run(
        [sys.executable, "-m", "aitp.cli", *args],
        env={**base, **(env or {})},
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version() -> None:
    result = aitp("version")
    assert result.returncode == 0
    assert result.stdout.startswith("aitp 0.")


def test_config_check_defaults_show_echo_when_no_key(tmp_path: Path) -> None:
    result = aitp("config", "check", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["mode"] == "embedded"
    assert summary["tiers"] == {"turbo": ["local/echo"], "plus": ["local/echo"]}
    assert summary["disabled"]["qwen-turbo"] == "DASHSCOPE_API_KEY is not set"


def test_config_check_with_key_uses_dashscope(tmp_path: Path) -> None:
    result = aitp("config", "check", "--json", env={"DASHSCOPE_API_KEY": "sk-x"}, cwd=tmp_path)
    summary = json.loads(result.stdout)
    assert summary["tiers"] == {"turbo": ["dashscope/qwen-turbo"], "plus": ["dashscope/qwen-plus"]}


def test_yaml_settings_and_env_override(tmp_path: Path) -> None:
    config = tmp_path / "aitp.yaml"
    config.write_text("server:\n  port: 9100\nrouting:\n  long_prompt_tokens: 500\n")
    result = aitp("config", "check", "--json", env={"AITP_CONFIG": str(config), "AITP_SERVER__PORT": "9200"})
    summary = json.loads(result.stdout)
    assert summary["server"]["port"] == 9200, "environment beats the file"
    assert summary["routing"]["long_prompt_tokens"] == 500


def test_invalid_settings_fail_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "aitp.yaml"
    config.write_text("routing:\n  long_prompt_tokens: -3\nserver:\n  prot: 1\n")
    for command in (["config", "check"], ["serve"]):
        result = aitp(*command, env={"AITP_CONFIG": str(config)})
        assert result.returncode == 2
        assert "routing.long_prompt_tokens" in result.stderr
        assert "server.prot" in result.stderr
        assert "Traceback" not in result.stderr


def test_config_file_problems_are_explained(tmp_path: Path) -> None:
    missing = aitp("config", "check", env={"AITP_CONFIG": str(tmp_path / "nope.yaml")})
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("models: [unclosed\n")
    result = aitp("config", "check", env={"AITP_CONFIG": str(broken)})
    assert result.returncode == 2 and "not valid YAML" in result.stderr
    dupes = tmp_path / "dupes.yaml"
    dupes.write_text("models:\n  - {name: a, model: openai/x}\n  - {name: a, model: openai/y}\n")
    result = aitp("config", "check", env={"AITP_CONFIG": str(dupes)})
    assert result.returncode == 2 and "repeated: a" in result.stderr


def test_bad_database_url_is_refused() -> None:
    result = aitp("config", "check", env={"AITP_DATABASE_URL": "mysql://x"})
    assert result.returncode == 2 and "database_url" in result.stderr


def test_health_ready_and_metrics(gateway: Server) -> None:
    assert httpx.get(f"{gateway.base_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.base_url}/readyz").json()
    assert ready["checks"] == {"database": "ok", "broker": "ok", "chroma": "ok", "llm_engine": "ok"}
    httpx.post(
        f"{gateway.v1}/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": "m"}]},
        headers=gateway.admin_headers,
    )
    metrics = httpx.get(f"{gateway.base_url}/metrics").text
    assert 'aitp_route_decisions_total{reason="short_prompt",tier="turbo"}' in metrics
    assert "aitp_requests_total" in metrics


def test_keys_and_budgets_commands_against_a_live_server(gateway: Server) -> None:
    env = {"AITP_URL": gateway.base_url, "AITP_ADMIN_KEY": gateway.admin_key}
    project = "cli-" + os.urandom(3).hex()
    assert gateway.api("POST", "/api/projects", json={"name": project}).status_code == 201
    created = aitp("keys", "create", "--project", project, "--name", "ci", "--rpm", "10", env=env)
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["key"].startswith("sk-aitp-") and key["rpm"] == 10
    assert "shown only once" in created.stderr
    listed = json.loads(aitp("keys", "list", "--project", project, env=env).stdout)
    assert [k["id"] for k in listed] == [key["id"]] and "key" not in listed[0]
    budget = aitp(
        "budgets", "set", "--project", project, "--tokens", "5000", "--period", "day", "--action", "block", env=env
    )
    assert budget.returncode == 0, budget.stderr
    shown = json.loads(aitp("budgets", "show", "--project", project, env=env).stdout)
    assert shown[0]["status"]["tokens"]["limit"] == 5000 and shown[0]["status"]["current_action"] == "ok"
    revoked = aitp("keys", "revoke", key["id"], "--reason", "rotation", env=env)
    assert json.loads(revoked.stdout)["status"] == "revoked"
    bad = aitp("budgets", "set", "--project", project, "--tokens", "-4", env=env)
    assert bad.returncode == 1 and "limit_tokens" in bad.stderr
    denied = aitp("keys", "list", env={**env, "AITP_ADMIN_KEY": "sk-aitp-wrong"})
    assert denied.returncode == 1 and "401" in denied.stderr


def test_serve_refuses_missing_or_weak_admin_key(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AITP_")}
    for key, words in ((None, "AITP_ADMIN_KEY is required"), ("changeme-changeme-changeme-changeme", "too weak")):
        env = dict(base, AITP_DATA_DIR=str(tmp_path))
        if key:
            env["AITP_ADMIN_KEY"] = key
        result = subprocess.run(
            [sys.executable, "-m", "aitp.cli", "serve", "--port", "0"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert words in result.stderr and "Traceback" not in result.stderr
        if key:
            assert key not in result.stderr, "the key itself is never echoed"
