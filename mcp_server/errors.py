"""Domain errors become tool errors whose message names the fix; nothing crashes the session."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from core.errors import APIError
from core.validation import invalid_from

log = logging.getLogger("aitp.mcp")
P = ParamSpec("P")
R = TypeVar("R")


def domain_errors(tool: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Run ``tool``; an :class:`APIError` becomes a :class:`ToolError` with its message (and the field it names)."""

    @functools.wraps(tool)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await tool(*args, **kwargs)
        except ToolError:
            raise
        except APIError as exc:
            where = f" (argument '{exc.param}')" if exc.param else ""
            raise ToolError(f"{exc.code or exc.type}: {exc.message}{where}") from None
        except ValidationError as exc:
            error = invalid_from(exc)
            raise ToolError(f"{error.code}: {error.message}") from None

    return run
