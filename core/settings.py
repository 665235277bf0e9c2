"""One typed settings object, read once at start and passed down.

Sources, highest priority first: ``AITP_*`` environment variables (nested with
``__``, e.g. ``AITP_SERVER__PORT=9000``), then the YAML file named by
``AITP_CONFIG`` (default ``./aitp.yaml`` when it exists), then the defaults here.
Invalid values fail at start with a message naming the field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

Tier = Literal["turbo", "plus"]
TIERS: tuple[Tier, ...] = ("turbo", "plus")
LOCAL_ECHO = "local/echo"


class SettingsError(Exception):
    """Settings could not be loaded; the message names the field and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Deployment(_Strict):
    """One upstream model that litellm can call."""

    name: str = Field(min_length=1, description="name clients may use as `model`")
    model: str = Field(min_length=1, description="litellm model string, e.g. dashscope/qwen-turbo")
    tier: Tier | None = Field(default=None, description="tier this deployment serves, if any")
    api_base: str | None = None
    api_key: str | None = Field(default=None, description="literal key (prefer api_key_env)")
    api_key_env: str | None = Field(default=None, description="environment variable holding the key")
    timeout_s: float | None = Field(default=None, gt=0)
    input_cost_per_token: float | None = Field(default=None, ge=0)
    output_cost_per_token: float | None = Field(default=None, ge=0)
    forward_user: bool = Field(
        default=True, description="send the request's `user` upstream (litellm drops it for non-OpenAI models)"
    )
    extra: dict[str, Any] = Field(default_factory=dict, description="more litellm_params, passed as is")

    def resolved_key(self, environ: dict[str, str]) -> str | None:
        if self.api_key:
            return self.api_key
        if self.api_key_env:
            return environ.get(self.api_key_env) or None
        return None

    def is_configured(self, environ: dict[str, str]) -> bool:
        """A deployment is usable when its key is known, or it needs none (local servers)."""
        if self.api_key or self.api_key_env is None:
            return True
        return bool(environ.get(self.api_key_env))


def _default_deployments() -> list[Deployment]:
    return [
        Deployment(name="qwen-turbo", model="dashscope/qwen-turbo", tier="turbo", api_key_env="DASHSCOPE_API_KEY"),
        Deployment(name="qwen-plus", model="dashscope/qwen-plus", tier="plus", api_key_env="DASHSCOPE_API_KEY"),
    ]


class RoutingSettings(_Strict):
    long_prompt_tokens: int = Field(
        default=1000, ge=1, description="prompts with at least this many tokens go to plus (seed: 1,000 characters)"
    )
    tools_tier: Tier = "plus"
    json_schema_tier: Tier = Field(
        default="plus", description="tier for JSON-schema output; 'turbo' tries turbo first and cascades to plus"
    )
    cascade: bool = Field(default=True, description="re-ask plus once when a turbo answer fails the JSON schema")


class RetrySettings(_Strict):
    num_retries: int = Field(default=2, ge=0, le=10)
    retry_after_s: float = Field(default=0.2, ge=0, description="minimum back-off between retries")
    timeout_s: float = Field(default=60.0, gt=0, description="per-attempt upstream timeout")
    fallbacks: dict[str, list[str]] = Field(
        default_factory=lambda: {"plus": ["turbo"]}, description="model group -> groups tried on upstream errors"
    )


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    access_log: bool = False


class UsageSettings(_Strict):
    flush_interval_s: float = Field(default=0.2, gt=0)
    batch_size: int = Field(default=200, ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AITP_", env_nested_delimiter="__", extra="forbid")

    dev: bool = False
    data_dir: Path = Path("./data")
    database_url: str = ""
    redis_url: str | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = True
    server: ServerSettings = Field(default_factory=ServerSettings)
    models: list[Deployment] = Field(default_factory=_default_deployments)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    retries: RetrySettings = Field(default_factory=RetrySettings)
    usage: UsageSettings = Field(default_factory=UsageSettings)

    @field_validator("database_url")
    @classmethod
    def _check_db_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite+aiosqlite:/// or postgresql+asyncpg:// URL")
        return value

    @model_validator(mode="after")
    def _check_models(self) -> Settings:
        names = [d.name for d in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"models: deployment names must be unique, repeated: {', '.join(dupes)}")
        reserved = {"auto", *TIERS, LOCAL_ECHO}
        clash = sorted(set(names) & reserved)
        if clash:
            raise ValueError(f"models: names {clash} are reserved for routing; pick other names")
        known = {*names, *TIERS}
        for group, targets in self.retries.fallbacks.items():
            for target in [group, *targets]:
                if target not in known:
                    raise ValueError(f"retries.fallbacks: unknown model group '{target}'; use a tier or model name")
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'aitp.db').as_posix()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the YAML file; the file beats the defaults.
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls))


def config_path(environ: dict[str, str]) -> Path | None:
    named = environ.get("AITP_CONFIG")
    if named:
        return Path(named)
    default = Path("aitp.yaml")
    return default if default.exists() else None


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"invalid settings ({source}):"]
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "(top level)"
        lines.append(f"  - {field}: {item['msg']} (got {item.get('input')!r:.80})")
    lines.append("fix the named field in aitp.yaml or its AITP_* environment variable")
    return "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and aitp.yaml; raise SettingsError naming the field."""
    path = config_path(dict(os.environ))
    source = "environment"
    settings_cls: type[Settings] = Settings
    if path is not None:
        if not path.is_file():
            raise SettingsError(f"AITP_CONFIG names {path}, which does not exist; create it or unset AITP_CONFIG")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise SettingsError(f"{path} is not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise SettingsError(f"{path} must hold a mapping of settings at the top level")
        source = f"{path} and environment"
        config = SettingsConfigDict(**{**Settings.model_config, "yaml_file": path, "yaml_file_encoding": "utf-8"})
        settings_cls = type("Settings", (Settings,), {"model_config": config})
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, source)) from exc
