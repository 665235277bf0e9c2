"""Browser test specs: what a run does, validated before any browser starts.

A spec is YAML or JSON: ``base_url``, viewport, locale, optional storage state,
``variables`` and ``secrets`` (``{{name}}`` in any value; secrets are masked as
``***`` in every result and log), and ``steps``. A step's ``target`` is one
locator or a list of alternatives tried in order. A locator names exactly one
strategy; its tier follows from it: gold ``testid``; silver ``role`` (+
``name``), ``label``, ``placeholder``, ``text``; bronze ``css``, ``xpath``.

The planner's and the automation workflow's step shape (``locator`` +
``fallbacks`` as ``{strategy, value, name}``) is accepted too, so their specs
run here unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import InvalidRequest
from core.validation import invalid_from

Tier = Literal["gold", "silver", "bronze"]
TIER_RANK: dict[str, int] = {"gold": 0, "silver": 1, "bronze": 2}
STRATEGIES = ("testid", "role", "label", "placeholder", "text", "css", "xpath")
STRATEGY_TIER: dict[str, Tier] = {
    "testid": "gold",
    "role": "silver",
    "label": "silver",
    "placeholder": "silver",
    "text": "silver",
    "css": "bronze",
    "xpath": "bronze",
}
Action = Literal[
    "goto",
    "click",
    "fill",
    "select",
    "press",
    "hover",
    "check",
    "uncheck",
    "upload",
    "scroll_into_view",
    "wait_for",
    "expect_visible",
    "expect_hidden",
    "expect_text",
    "expect_url",
    "expect_title",
    "expect_value",
    "expect_count",
    "screenshot",
]
NEEDS_TARGET = frozenset(
    {"click", "fill", "select", "hover", "check", "uncheck", "upload", "scroll_into_view", "wait_for"}
    | {"expect_visible", "expect_hidden", "expect_text", "expect_value", "expect_count"}
)
NEEDS_VALUE = frozenset({"fill", "select", "press", "upload", "expect_text", "expect_value", "expect_url"})
_REFERENCE = re.compile(r"\{\{\s*([A-Za-z_][\w]*)\s*\}\}")
MAX_SPEC_BYTES = 512 * 1024


class Locator(BaseModel):
    """One way to find an element; exactly one strategy is set."""

    model_config = ConfigDict(extra="forbid")

    testid: str | None = Field(default=None, min_length=1, max_length=500)
    role: str | None = Field(default=None, min_length=1, max_length=64, description="ARIA role, e.g. button")
    name: str | None = Field(default=None, max_length=500, description="with role: the accessible name")
    label: str | None = Field(default=None, min_length=1, max_length=500)
    placeholder: str | None = Field(default=None, min_length=1, max_length=500)
    text: str | None = Field(default=None, min_length=1, max_length=500)
    css: str | None = Field(default=None, min_length=1, max_length=2000)
    xpath: str | None = Field(default=None, min_length=1, max_length=2000)
    exact: bool = Field(default=False, description="match names and text exactly")

    @model_validator(mode="before")
    @classmethod
    def _planner_shape(cls, data: Any) -> Any:
        # {strategy, value, name, tier} as browser.plan and automation.generate write it.
        if isinstance(data, dict) and "strategy" in data:
            data = dict(data)
            strategy, value = data.pop("strategy"), data.pop("value", None)
            data.pop("tier", None)
            if strategy not in STRATEGIES:
                raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
            data[strategy] = value
        return data

    @model_validator(mode="after")
    def _one_strategy(self) -> Locator:
        set_ = [s for s in STRATEGIES if getattr(self, s) is not None]
        if len(set_) != 1:
            raise ValueError(f"a locator names exactly one of {', '.join(STRATEGIES)}; this one names {set_ or 'none'}")
        if self.name is not None and set_[0] != "role":
            raise ValueError("'name' goes with 'role' only")
        return self

    @property
    def strategy(self) -> str:
        return next(s for s in STRATEGIES if getattr(self, s) is not None)

    @property
    def value(self) -> str:
        return str(getattr(self, self.strategy))

    @property
    def tier(self) -> Tier:
        return STRATEGY_TIER[self.strategy]

    def describe(self) -> str:
        if self.strategy == "role":
            return f"role={self.role}" + (f" name={self.name!r}" if self.name else "")
        return f"{self.strategy}={self.value!r}"

    def plain(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude_defaults=True) | ({"exact": True} if self.exact else {})


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action
    description: str = Field(default="", max_length=1000)
    target: list[Locator] = Field(default_factory=list, max_length=10, description="alternatives, tried in order")
    value: str | None = Field(default=None, max_length=10_000)
    url: str | None = Field(default=None, max_length=4000, description="goto: absolute, or relative to base_url")
    count: int | None = Field(default=None, ge=0, le=10_000, description="expect_count")
    state: Literal["visible", "hidden", "attached", "detached"] = Field(default="visible", description="wait_for")
    timeout_s: float | None = Field(default=None, gt=0, le=120, description="this step's time budget")
    screenshot: bool = Field(default=False, description="take a screenshot after the step")

    @model_validator(mode="before")
    @classmethod
    def _shapes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        target = data.get("target")
        if isinstance(target, dict):
            data["target"] = [target]
        if "locator" in data:  # planner shape: locator + fallbacks
            data["target"] = [data.pop("locator"), *(data.pop("fallbacks", None) or [])]
        if data.get("action") == "goto" and data.get("url") is None and isinstance(data.get("value"), str):
            data["url"] = data.pop("value")
        if data.get("action") == "expect_url" and data.get("value") is None and isinstance(data.get("url"), str):
            data["value"] = data.pop("url")
        return data

    @model_validator(mode="after")
    def _needs(self) -> Step:
        if self.action in NEEDS_TARGET and not self.target:
            raise ValueError(f"'{self.action}' needs a target (a locator or a list of alternatives)")
        if self.action in NEEDS_VALUE and self.value is None:
            raise ValueError(f"'{self.action}' needs a value")
        if self.action == "goto" and not self.url:
            raise ValueError("'goto' needs a url")
        if self.action == "expect_count" and self.count is None:
            raise ValueError("'expect_count' needs a count")
        return self


class Viewport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int = Field(default=1280, ge=200, le=3840)
    height: int = Field(default=800, ge=200, le=2160)


class Spec(BaseModel):
    """A browser test: where it starts, how the browser is set up, and its steps."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="browser test", min_length=1, max_length=200)
    base_url: str = Field(default="", max_length=2000)
    viewport: Viewport = Field(default_factory=Viewport)
    locale: str = Field(default="zh-CN", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    storage_state: dict[str, Any] | None = Field(default=None, description="cookies and origins (Playwright shape)")
    variables: dict[str, str] = Field(default_factory=dict, max_length=200)
    secrets: dict[str, str] = Field(default_factory=dict, max_length=50, description="masked in results and logs")
    files: dict[str, str] = Field(
        default_factory=dict, max_length=20, description="file name -> text content, written to the run directory"
    )
    steps: list[Step] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _references(self) -> Spec:
        known = set(self.variables) | set(self.secrets)
        for index, step in enumerate(self.steps):
            for text in (step.value, step.url):
                for name in _REFERENCE.findall(text or ""):
                    if name not in known:
                        raise ValueError(
                            f"steps[{index}] uses {{{{{name}}}}}, which is neither a variable nor a secret"
                        )
        for name in self.files:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name) or ".." in name:
                raise ValueError(f"files: '{name}' must be a plain file name (letters, digits, . _ -)")
        return self

    def substitute(self, text: str) -> str:
        values = {**self.variables, **self.secrets}
        return _REFERENCE.sub(lambda m: values.get(m.group(1), m.group(0)), text)

    def mask(self, text: str) -> str:
        """``text`` with every secret's value replaced by ``***``."""
        for value in sorted(self.secrets.values(), key=len, reverse=True):
            if value:
                text = text.replace(value, "***")
        return text

    def public(self) -> dict[str, Any]:
        """The spec as a result shows it: secrets' values masked."""
        data = self.model_dump(mode="json", exclude_defaults=False)
        data["secrets"] = dict.fromkeys(self.secrets, "***")
        return data


def parse_spec(data: Any) -> Spec:
    """A spec from a dict, or from YAML/JSON text; a 400 naming the field when it does not fit."""
    if isinstance(data, str | bytes):
        raw = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
        if len(raw.encode()) > MAX_SPEC_BYTES:
            raise InvalidRequest(f"the spec is larger than {MAX_SPEC_BYTES} bytes; split it", param="spec")
        try:
            data = json.loads(raw) if raw.lstrip().startswith("{") else yaml.safe_load(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise InvalidRequest(f"the spec is neither valid JSON nor YAML: {exc}", param="spec") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the spec must be a mapping with steps (YAML or JSON)", param="spec")
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        error = invalid_from(exc)
        detail = error.message.removeprefix("invalid request body: ")
        raise InvalidRequest(f"invalid spec: {detail}", param=f"spec.{error.param}") from None
