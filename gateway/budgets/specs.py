"""What an admin may send to create or change a budget, validated."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.errors import InvalidRequest
from core.validation import Int64, Text

Scope = Literal["project", "key", "user"]
PeriodName = Literal["day", "month", "total"]
Action = Literal["alert", "downgrade", "block"]


class BudgetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: Annotated[str, Text(64, 1)]
    scope: Scope = "project"
    scope_id: Annotated[str, Text(256, 1)] | None = Field(default=None, description="key id or user name")
    period: PeriodName = "month"
    limit_tokens: Int64 | None = Field(default=None, gt=0)
    limit_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    action: Action = "alert"
    downgrade_at: float = Field(default=0.9, gt=0, le=1)
    thresholds: list[float] = Field(default_factory=lambda: [0.5, 0.8, 1.0], max_length=10)
    name: Annotated[str, Text(128)] | None = None

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: list[float]) -> list[float]:
        for t in value:
            if not 0 < t <= 1:
                raise ValueError("each threshold is a fraction in (0, 1], e.g. 0.8 for 80%")
        return sorted(set(value))

    def check(self) -> None:
        """Cross-field rules, raised as a 400 naming the field."""
        if self.limit_tokens is None and self.limit_usd is None:
            raise InvalidRequest("give limit_tokens, limit_usd or both", param="limit_tokens")
        if self.scope == "project" and self.scope_id not in (None, self.project):
            raise InvalidRequest("scope_id of a project budget is the project itself; leave it out", param="scope_id")
        if self.scope != "project" and self.scope_id is None:
            raise InvalidRequest(
                f"scope_id is required for a {self.scope} budget (the {self.scope} it limits)", param="scope_id"
            )
