"""Who is calling, and what their role lets them do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from core.errors import Forbidden

Role = Literal["admin", "member", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "member", "viewer")
ROOT_KEY_ID = "admin-env"
DEFAULT_PROJECT = "default"


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    project_id: str
    role: Role
    allowed_models: frozenset[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    root: bool = False  # the AITP_ADMIN_KEY: administers every project
    expires_at: datetime | None = None  # aware; long-lived streams close then, not at their next key check

    def require_spend(self) -> None:
        if self.role == "viewer":
            raise Forbidden(
                "this key has the viewer role: it can read usage but not call models; use a member or admin key",
                code="role_forbidden",
            )

    def require_model(self, model: str) -> None:
        if self.allowed_models is not None and model not in self.allowed_models:
            allowed = ", ".join(sorted(self.allowed_models)) or "none"
            raise Forbidden(
                f"this key may not use model '{model}'; it is allowed: {allowed}",
                code="model_not_allowed",
                param="model",
            )

    def can_read(self, project_id: str) -> bool:
        return self.root or project_id == self.project_id

    def require_admin(self, project_id: str | None = None) -> None:
        """Root administers everything; a project admin key administers its own project only."""
        if self.root:
            return
        if self.role != "admin":
            raise Forbidden(f"this needs an admin key; this key's role is {self.role}", code="role_forbidden")
        if project_id is not None and project_id != self.project_id:
            # Do not reveal whether another project exists.
            raise Forbidden(f"an admin key of project '{self.project_id}' cannot manage other projects")

    def require_root(self) -> None:
        if not self.root:
            raise Forbidden("this needs the server admin key (AITP_ADMIN_KEY)", code="role_forbidden")
