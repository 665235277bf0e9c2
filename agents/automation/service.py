"""Automation cases for every interface: list and read the browser specs and API tests ``automation.generate`` made.

Any key of a project reads its cases; another project's case answers 404,
exactly like a missing one. The server admin key sees every project.
"""

from __future__ import annotations

from typing import Any

from core.errors import InvalidRequest
from core.identity.principal import Principal
from core.validation import check_int, check_text

from .store import AutomationStore

TARGETS = ("browser", "api")
MAX_PAGE = 500
MAX_OFFSET = 10**9


class AutomationService:
    def __init__(self, store: AutomationStore) -> None:
        self._store = store

    async def list_cases(
        self, principal: Principal, target: str | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        """``{total, items, limit, offset}``, newest first; ``target`` keeps browser or api cases only."""
        if target is not None and target not in TARGETS:
            raise InvalidRequest(f"query parameter 'target' must be browser or api, got {target!r}", param="target")
        check_int(limit, "limit", 1, MAX_PAGE)
        check_int(offset, "offset", 0, MAX_OFFSET)
        total, items = await self._store.list(principal.scope(), target=target, limit=limit, offset=offset)
        return {"total": total, "items": items, "limit": limit, "offset": offset}

    async def get_case(self, principal: Principal, case_id: str) -> dict[str, Any]:
        return await self._store.get(check_text(case_id, "case_id"), principal.scope())
