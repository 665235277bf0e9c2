"""Prices per token: litellm's price map, overridden per deployment in aitp.yaml."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Price:
    input_per_token: float
    output_per_token: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return prompt_tokens * self.input_per_token + completion_tokens * self.output_per_token


FREE = Price(0.0, 0.0)


def lookup(cost_map: Mapping[str, Any], model: str, override: Price | None = None) -> Price:
    """Price of a litellm model string; an override wins, an unknown model is free (and logged by the caller)."""
    if override is not None:
        return override
    entry = cost_map.get(model) or cost_map.get(model.split("/", 1)[-1])
    if not isinstance(entry, Mapping):
        return FREE
    return Price(
        float(entry.get("input_cost_per_token") or 0.0),
        float(entry.get("output_cost_per_token") or 0.0),
    )
