"""A prompt's spec: what one ``prompts/*.yaml`` file (or one publish request) holds, validated.

A spec names the prompt, describes it, declares its variables as a JSON
schema, gives the chat messages whose contents are Jinja2 templates, hints
the tier and optionally the JSON schema the answer must meet. Its content
hash is taken over the normalised spec, so reformatting a file or editing
its comments does not make a new version.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import jsonschema
import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import InvalidRequest
from core.schema import check_schema as check_json_schema
from core.validation import MAX_DEPTH, Json, Text, check_body, invalid_from

NAME_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
LABEL_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
NAME_RULE = "dotted lower-case words such as 'testcase.generate' (letters, digits and '_'; no '/', '..' or spaces)"
PromptTier = Literal["turbo", "plus", "auto"]
MAX_NAME_CHARS = 128  # prompt_versions.name is String(128)
# jsonschema checks a schema recursively, several frames a level: 32 levels stay far from Python's limit.
SCHEMA_DEPTH = 32
# A spec is a few kilobytes; YAML aliases can make a short text expand into millions of values.
MAX_SPEC_VALUES = 100_000


def check_name(name: str) -> str:
    if len(name) > MAX_NAME_CHARS or not NAME_RE.match(name):
        raise ValueError(f"prompt names are {NAME_RULE}, at most {MAX_NAME_CHARS} characters; got {name!r:.80}")
    return name


def check_label(label: str) -> str:
    if not LABEL_RE.match(label):
        raise ValueError(f"labels are lower-case letters, digits, '-' and '_' (at most 64), got {label!r:.80}")
    return label


class TemplateMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant"]
    content: Annotated[str, Text(200_000, 1)] = Field(description="a Jinja2 template")


class PromptSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: Annotated[str, Text(4000)] = ""
    tier: PromptTier = Field(default="auto", description="routing hint for model 'auto'")
    variables: Annotated[dict[str, Any], Json(SCHEMA_DEPTH)] = Field(
        default_factory=lambda: {"type": "object"}, description="JSON schema of the variables"
    )
    template: list[TemplateMessage] = Field(min_length=1, max_length=64)
    response_schema: Annotated[dict[str, Any], Json(SCHEMA_DEPTH)] | None = Field(
        default=None, description="JSON schema the answer must meet"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("variables")
    @classmethod
    def _variables(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_schema(value)
        if value.get("type", "object") != "object":
            raise ValueError("must be a JSON schema of type 'object' (one property per variable)")
        properties = value.get("properties", {})
        if not isinstance(properties, dict):
            raise ValueError("properties must be a mapping of variable name to JSON schema")
        return value

    @field_validator("response_schema")
    @classmethod
    def _response_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            _check_schema(value)
        return value

    def declared(self) -> set[str]:
        return set(self.variables.get("properties", {}))

    def normalised(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def content_hash(self) -> str:
        return hashlib.sha256(orjson.dumps(self.normalised(), option=orjson.OPT_SORT_KEYS)).hexdigest()


def _check_schema(schema: dict[str, Any]) -> None:
    try:
        check_json_schema(schema)  # its patterns must run on RE2: they match caller-controlled text
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        raise ValueError(f"not a valid JSON schema{f' at {where}' if where else ''}: {exc.message}") from None


@dataclass(frozen=True, slots=True)
class Draft:
    """A validated spec with its YAML text, ready to compile and publish."""

    spec: PromptSpec
    text: str
    # File line of each template message's first content line, when known (for error messages).
    content_lines: dict[int, int] = field(default_factory=dict)


def from_data(data: Any, text: str | None = None, content_lines: dict[int, int] | None = None) -> Draft:
    """A draft from decoded JSON or YAML; 400 naming each bad field."""
    if not isinstance(data, dict):
        raise InvalidRequest("a prompt spec must be a mapping with name, template and the other fields")
    check_body(data, "prompt spec", max_nodes=MAX_SPEC_VALUES)
    try:
        spec = PromptSpec.model_validate(data)
    except ValidationError as exc:
        error = invalid_from(exc)
        error.message = error.message.replace("invalid request body", "invalid prompt spec", 1)
        raise error from None
    return Draft(spec=spec, text=text if text is not None else to_yaml(spec), content_lines=content_lines or {})


def from_yaml(text: str) -> Draft:
    """A draft from YAML text, remembering where each template's content starts in it."""
    try:
        _check_yaml_depth(text)
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise InvalidRequest(f"the prompt is not valid YAML: {exc}") from None
    return from_data(data, text if text.endswith("\n") else text + "\n", _content_lines(node))


def _check_yaml_depth(text: str) -> None:
    """Refuse YAML nested deeper than the JSON limit before building it: composing nodes recurses.

    The parser's event stream is produced without recursion, so counting
    collection starts and ends on it is safe for any depth.
    """
    depth = 0
    for events, event in enumerate(yaml.parse(text, Loader=yaml.SafeLoader), start=1):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise InvalidRequest(
                    f"the prompt YAML is nested deeper than {MAX_DEPTH} levels (at line {line}); flatten it",
                    code="too_deeply_nested",
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        if events > MAX_SPEC_VALUES:
            raise InvalidRequest(f"the prompt YAML holds more than {MAX_SPEC_VALUES} values; it is not a prompt")


def _content_lines(root: yaml.Node | None) -> dict[int, int]:
    lines: dict[int, int] = {}
    if not isinstance(root, yaml.MappingNode):
        return lines
    template = next((v for k, v in root.value if getattr(k, "value", None) == "template"), None)
    if not isinstance(template, yaml.SequenceNode):
        return lines
    for index, item in enumerate(template.value):
        if not isinstance(item, yaml.MappingNode):
            continue
        content = next((v for k, v in item.value if getattr(k, "value", None) == "content"), None)
        if isinstance(content, yaml.ScalarNode):
            style = getattr(content, "style", None)
            # A literal block starts on the line after its '|'; a plain or quoted scalar on its own line.
            if style == "|":
                lines[index] = content.start_mark.line + 2
            elif style in (None, "'", '"'):
                lines[index] = content.start_mark.line + 1
    return lines


def _represent_str(dumper: yaml.representer.BaseRepresenter, value: Any) -> yaml.Node:
    style = "|" if "\n" in value else None
    node: yaml.Node = dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)
    return node


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks, so a published JSON spec reads (and diffs) like a file."""

    yaml_representers = {**yaml.SafeDumper.yaml_representers, str: _represent_str}

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # indent list items under their key, as people write YAML


def to_yaml(spec: PromptSpec) -> str:
    data = spec.model_dump(mode="json", exclude_none=True)
    return yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=120)
