"""The LLM engine: litellm's Router over the catalog, loaded off the event loop.

``import litellm`` costs seconds and ~200 MB, so the server starts accepting
requests first and :func:`load_engine` runs in a thread; calls wait for it.
The Router does provider translation, retries with back-off, timeouts and
fallbacks; this module maps its exceptions onto aitp's error types.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.clock import Clock
from core.errors import APIError, InvalidRequest, RateLimited, UpstreamError, UpstreamTimeout
from core.settings import RetrySettings

from .catalog import ECHO_PROVIDER, Catalog, Entry
from .pricing import Price, lookup
from .schemas import CHAT_UPSTREAM_PARAMS, EMBEDDING_UPSTREAM_PARAMS

log = logging.getLogger("aitp.gateway.engine")


@dataclass(frozen=True, slots=True)
class Served:
    """Which deployment answered, as the Router reports it."""

    entry: Entry
    group: str


class Engine:
    def __init__(
        self, litellm: Any, router: Any, catalog: Catalog, fallbacks: Mapping[str, list[str]] | None = None
    ) -> None:
        self._litellm = litellm
        self._router = router
        self._catalog = catalog
        self._fallbacks = dict(fallbacks or {})
        # aitp prices, counts and records every call itself. litellm's success logging (cost
        # calculation, zero-cost diagnostics, per-deployment usage tracking) repeats that work and
        # measured ~40% of the CPU of a call here; litellm skips it for calls it marks internal.
        from litellm._internal_context import is_internal_call

        self._internal = is_internal_call
        self._prices: dict[str, Price] = {}
        for entry in catalog.entries.values():
            override = None
            if entry.input_cost_per_token is not None or entry.output_cost_per_token is not None:
                override = Price(entry.input_cost_per_token or 0.0, entry.output_cost_per_token or 0.0)
            self._prices[entry.name] = lookup(litellm.model_cost, entry.model, override)

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def price(self, entry: Entry) -> Price:
        return self._prices[entry.name]

    def _reachable(self, group: str) -> list[str]:
        """The deployments that may answer a call to ``group``, fallbacks included."""
        groups = [group, *self._fallbacks.get(group, [])]
        return [n for g in groups for n in (self._catalog.tiers.get(g) or ([g] if g in self._catalog.entries else []))]

    def only_echo(self, group: str) -> bool:
        """True when only the built-in ``local/echo`` stand-in can answer ``group``: nothing is spent."""
        names = self._reachable(group)
        return bool(names) and all(self._catalog.entries[n].is_echo for n in names)

    def worst_price(self, group: str) -> Price:
        """The dearest deployment that may answer a call to ``group``, fallbacks included (for reservations)."""
        names = self._reachable(group)
        prices = [self._prices[n] for n in names] or [Price(0.0, 0.0)]
        return Price(max(p.input_per_token for p in prices), max(p.output_per_token for p in prices))

    def tier_price(self, tier: str) -> Price:
        names = self._catalog.tiers.get(tier) or []
        return self._prices[names[0]] if names else Price(0.0, 0.0)

    def count_tokens(self, messages: list[dict[str, Any]]) -> int:
        return int(self._litellm.token_counter(messages=messages))

    def count_text_tokens(self, text: str) -> int:
        return int(self._litellm.token_counter(text=text, count_response_tokens=True))

    def mark_internal(self) -> None:
        """Mark the current task's litellm calls as aitp-accounted (see __init__); for stream consumers."""
        self._internal.set(True)

    async def complete(self, group: str, payload: dict[str, Any]) -> tuple[Any, Served]:
        _only(payload, _CHAT_KWARGS)
        token = self._internal.set(True)
        try:
            response = await self._router.acompletion(model=group, **payload)
        finally:
            self._internal.reset(token)
        return response, self._served(response, group)

    async def embed(self, group: str, payload: dict[str, Any]) -> tuple[Any, Served]:
        _only(payload, _EMBEDDING_KWARGS)
        token = self._internal.set(True)
        try:
            response = await self._router.aembedding(model=group, **payload)
        finally:
            self._internal.reset(token)
        return response, self._served(response, group)

    def _served(self, response: Any, group: str) -> Served:
        hidden: Mapping[str, Any] = getattr(response, "_hidden_params", None) or {}
        model_id = str(hidden.get("model_id") or "")
        served_group, _, name = model_id.partition("::")
        entry = self._catalog.entries.get(name)
        if entry is None:
            # The Router did not say; fall back to the first deployment of the group.
            names = self._catalog.tiers.get(group) or [group]
            entry = self._catalog.entries[names[0]]
            served_group = group
        return Served(entry=entry, group=served_group or group)

    def map_error(self, exc: BaseException) -> APIError:
        """Translate a litellm/Router exception into an error the client can act on."""
        if isinstance(exc, APIError):
            return exc
        litellm = self._litellm
        name = type(exc).__name__
        detail = _short(getattr(exc, "message", None) or str(exc))
        if isinstance(exc, litellm.Timeout | TimeoutError):
            return UpstreamTimeout(f"the upstream model did not answer in time after retries ({detail})")
        if isinstance(exc, litellm.ContextWindowExceededError):
            return InvalidRequest(f"the prompt is too long for the model: {detail}", param="messages")
        if isinstance(exc, litellm.AuthenticationError | litellm.PermissionDeniedError):
            return UpstreamError(
                f"the upstream provider rejected aitp's credentials ({detail}); check the deployment's api_key_env"
            )
        if isinstance(exc, litellm.NotFoundError):
            return UpstreamError(f"the upstream provider does not know the configured model ({detail})")
        if isinstance(exc, litellm.RateLimitError):
            return RateLimited(
                f"the upstream provider is rate limiting aitp after retries ({detail}); retry later",
                code="upstream_rate_limited",
            )
        if isinstance(exc, litellm.BadRequestError | litellm.UnprocessableEntityError):
            return InvalidRequest(f"the upstream provider refused the request: {detail}")
        return UpstreamError(f"the upstream model failed after retries ({name}: {detail})")


# The only keyword arguments the Router ever gets besides ``model``: a second fence behind the request
# models, because litellm reads any other name (api_base, api_key, num_retries …) as its own option.
_CHAT_KWARGS = CHAT_UPSTREAM_PARAMS | {"stream", "stream_options", "extra_body"}
_EMBEDDING_KWARGS = EMBEDDING_UPSTREAM_PARAMS | {"extra_body"}


def _only(payload: Mapping[str, Any], allowed: frozenset[str]) -> None:
    stray = sorted(set(payload) - allowed)
    if stray:
        raise RuntimeError(f"refusing to pass {stray} to litellm: not an upstream parameter")


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _register_prices(litellm: Any, catalog: Catalog) -> None:
    """Put price overrides into litellm's map once, at load.

    Passing prices per call instead makes litellm rebuild its model map on every call (measured: ~1 ms),
    and an unpriced model sends every call through litellm's zero-cost diagnostics.
    """
    for entry in catalog.entries.values():
        if entry.input_cost_per_token is None and entry.output_cost_per_token is None:
            continue
        known = dict(litellm.model_cost.get(entry.model) or {})
        known.update(
            {
                "input_cost_per_token": entry.input_cost_per_token or 0.0,
                "output_cost_per_token": entry.output_cost_per_token or 0.0,
                "litellm_provider": entry.model.split("/", 1)[0],
                "mode": known.get("mode", "chat"),
            }
        )
        litellm.register_model({entry.model: known})


def load_engine(catalog: Catalog, retries: RetrySettings, clock: Clock) -> Engine:
    """Import litellm and build the Router. Blocking: run it in a thread."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm
    from litellm.router import Router

    from .echo import EchoLLM

    litellm.telemetry = False
    litellm.disable_streaming_logging = True  # see Engine.__init__: aitp accounts for streams itself
    litellm.suppress_debug_info = True
    litellm.custom_provider_map = [{"provider": ECHO_PROVIDER, "custom_handler": EchoLLM(clock)}]
    litellm.utils.custom_llm_setup()  # type: ignore[no-untyped-call]
    _register_prices(litellm, catalog)
    fallbacks = [{group: targets} for group, targets in retries.fallbacks.items()]
    router = Router(
        model_list=catalog.router_model_list(),
        num_retries=retries.num_retries,
        retry_after=retries.retry_after_s,  # type: ignore[arg-type]  # litellm sleeps for a float
        timeout=retries.timeout_s,
        fallbacks=fallbacks,
        routing_strategy="simple-shuffle",
    )
    log.info("llm engine ready", extra={"deployments": sorted(catalog.entries)})
    return Engine(litellm, router, catalog, retries.fallbacks)
