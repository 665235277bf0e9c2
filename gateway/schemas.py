"""Request bodies of the OpenAI-compatible routes, validated with pydantic.

Every top-level field a client may send is named here. The request reaches
litellm as keyword arguments, and litellm reads many names as its own options
(``api_base``, ``api_key``, ``num_retries``, ``mock_response`` …), so an
unnamed field is never forwarded: it is a 400 naming it, unless a deployment
lists it in ``extra_params`` (provider-specific fields such as DashScope's
``enable_search``), and then it travels only inside the provider's
``extra_body``. :meth:`ChatRequest.upstream_params` builds what goes upstream
from the named fields alone.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from core.errors import InvalidRequest
from core.validation import did_you_mean, parse

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[dict[str, Any]] | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None

    @field_validator("json_schema")
    @classmethod
    def _schema_has_body(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and not isinstance(value.get("schema", {}), dict):
            raise ValueError("json_schema.schema must be an object (a JSON schema)")
        return value


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool | None = None


class PromptRef(BaseModel):
    """A registry prompt to render before the request's own messages (``extra_body={"prompt": …}``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    version: int | None = Field(default=None, ge=1, description="a published version; default: the label's")
    label: str | None = Field(default=None, min_length=1, max_length=64, description="default: production")
    variables: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_selector(self) -> PromptRef:
        if self.version is not None and self.label is not None:
            raise ValueError("give prompt.version or prompt.label, not both")
        return self


# OpenAI chat-completion parameters that go upstream as they were sent. aitp consumes
# ``model``, ``prompt``, ``metadata``, ``stream`` and ``stream_options`` itself.
CHAT_UPSTREAM_PARAMS = frozenset(
    {
        "messages",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "functions",
        "function_call",
        "response_format",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "n",
        "user",
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "seed",
        "modalities",
        "audio",
        "prediction",
        "reasoning_effort",
        "verbosity",
        "service_tier",
        "store",
        "prompt_cache_key",
        "safety_identifier",
        "web_search_options",
    }
)
EMBEDDING_UPSTREAM_PARAMS = frozenset({"input", "dimensions", "encoding_format", "user"})

JSONObject = dict[str, Any]


class _OpenAIRequest(BaseModel):
    """Unknown fields are collected (``model_extra``) so that :func:`unknown_fields` can name them."""

    model_config = ConfigDict(extra="allow")

    def extras(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ChatRequest(_OpenAIRequest):
    model: str = Field(min_length=1, max_length=256)
    prompt: PromptRef | None = None  # validated before messages, which it makes optional
    messages: list[Message] | None = Field(default=None, validate_default=True)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[JSONObject] | None = Field(default=None, max_length=128)
    tool_choice: str | JSONObject | None = None
    parallel_tool_calls: bool | None = None
    functions: list[JSONObject] | None = Field(default=None, max_length=128)
    function_call: str | JSONObject | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=2**31 - 1)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=2**31 - 1)
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=16)
    user: str | None = Field(default=None, max_length=256)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    modalities: list[str] | None = None
    audio: JSONObject | None = None
    prediction: JSONObject | None = None
    reasoning_effort: str | None = Field(default=None, max_length=32)
    verbosity: str | None = Field(default=None, max_length=32)
    service_tier: str | None = Field(default=None, max_length=32)
    store: bool | None = None
    prompt_cache_key: str | None = Field(default=None, max_length=256)
    safety_identifier: str | None = Field(default=None, max_length=256)
    web_search_options: JSONObject | None = None
    metadata: dict[str, str] | None = None

    @field_validator("messages")
    @classmethod
    def _messages_or_prompt(cls, value: list[Message] | None, info: ValidationInfo) -> list[Message] | None:
        # Messages are optional (or empty, as the openai SDK needs the argument) only with a prompt.
        # A prompt that failed validation is not in info.data: its own error is the one to report.
        if "prompt" in info.data and info.data["prompt"] is None:
            if value is None:
                raise PydanticCustomError("missing", "Field required")
            if not value:
                raise PydanticCustomError("too_short", "List should have at least 1 item, not 0")
        return value

    @property
    def json_schema(self) -> dict[str, Any] | None:
        """The schema the answer must meet, if the client asked for one."""
        fmt = self.response_format
        if fmt is None or fmt.type != "json_schema" or fmt.json_schema is None:
            return None
        schema = fmt.json_schema.get("schema")
        return schema if isinstance(schema, dict) else {}

    @property
    def tier_hint(self) -> str | None:
        return (self.metadata or {}).get("tier")

    def upstream_params(self) -> dict[str, Any]:
        """The keyword arguments for the upstream call: the named OpenAI fields the client set, nothing else."""
        return self.model_dump(mode="json", include=set(CHAT_UPSTREAM_PARAMS), exclude_unset=True)


class EmbeddingRequest(_OpenAIRequest):
    model: str = Field(min_length=1, max_length=256)
    input: str | list[str] | list[int] | list[list[int]]
    dimensions: int | None = Field(default=None, ge=1, le=65536)
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = Field(default=None, max_length=256)

    def upstream_params(self) -> dict[str, Any]:
        return self.model_dump(mode="json", include=set(EMBEDDING_UPSTREAM_PARAMS), exclude_unset=True)

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("input must not be empty")
        return value


def unknown_fields(request: _OpenAIRequest, known: Collection[str], where: str) -> None:
    """400 for the first top-level field that is neither an OpenAI parameter nor a known extra."""
    for name in request.extras():
        if name not in known:
            typo = did_you_mean(name, [*type(request).model_fields, *known])
            raise InvalidRequest(
                f"unknown field '{name}': {where} accepts only OpenAI parameters; remove it "
                f"(a provider-specific field can be allowed per deployment with `extra_params` in aitp.yaml){typo}",
                param=name,
            )


def extra_body(request: _OpenAIRequest, allowed: Collection[str], group: str) -> dict[str, Any] | None:
    """The provider-specific fields for the upstream's ``extra_body``, all of which ``group`` must accept."""
    extras = request.extras()
    for name in extras:
        if name not in allowed:
            raise InvalidRequest(
                f"field '{name}' is not accepted by every deployment of '{group}', where this request goes; "
                f"remove it, or list it in `extra_params` of those deployments in aitp.yaml",
                param=name,
            )
    return extras or None


__all__ = [
    "CHAT_UPSTREAM_PARAMS",
    "EMBEDDING_UPSTREAM_PARAMS",
    "ChatRequest",
    "EmbeddingRequest",
    "Message",
    "PromptRef",
    "ResponseFormat",
    "StreamOptions",
    "extra_body",
    "parse",
    "unknown_fields",
]
