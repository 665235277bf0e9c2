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
_RANK: dict[Role, int] = {"viewer": 0, "member": 1, "admin": 2}


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

    def scope(self) -> str | None:
        """The project whose rows this key sees; None (every project) for the server admin key."""
        return None if self.root else self.project_id

    def require_role(self, minimum: Role, limits: str = "") -> None:
        """403 ``role_forbidden`` for a key below ``minimum``; ``limits`` says what such a key can and cannot do.

        The server admin key passes every check.
        """
        if self.root or _RANK[self.role] >= _RANK[minimum]:
            return
        use = "an admin key" if minimum == "admin" else "a member or admin key"
        said = f": {limits}" if limits else ""
        raise Forbidden(f"this key has the {self.role} role{said}; use {use}", code="role_forbidden")

    def require_spend(self) -> None:
        self.require_role("member", "it can read usage but not call models")

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
