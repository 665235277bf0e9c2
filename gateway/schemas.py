"""Request bodies of the OpenAI-compatible routes, validated with pydantic.

Only what aitp acts on is typed; everything else OpenAI defines passes through
to the upstream untouched (``extra="allow"``), so new OpenAI parameters keep
working without a release of aitp.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from core.validation import parse

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


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    prompt: PromptRef | None = None  # validated before messages, which it makes optional
    messages: list[Message] | None = Field(default=None, validate_default=True)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=16)
    user: str | None = Field(default=None, max_length=256)
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


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    user: str | None = Field(default=None, max_length=256)

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("input must not be empty")
        return value


__all__ = ["ChatRequest", "EmbeddingRequest", "Message", "PromptRef", "ResponseFormat", "StreamOptions", "parse"]
