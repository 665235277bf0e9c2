"""Budget and rate-limit enforcement around one upstream call.

Before the call, :meth:`BudgetEnforcer.admit` reserves the worst case (counted
prompt tokens plus a margin, plus ``max_tokens`` capped by a ceiling) in every
budget and limit that applies, atomically, through the ledger. After the call
:meth:`settle` charges what was used and returns the rest; :meth:`release`
returns everything when the call failed. Only ``block`` budgets and RPM/TPM
limits refuse; ``alert`` and ``downgrade`` budgets are tracked without a cap.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core.clock import Clock
from core.errors import RateLimited, ServiceUnavailable
from core.identity.principal import Principal
from core.settings import BudgetSettings
from core.timefmt import utc_iso
from gateway.ledger import (
    TOLERANCE,
    Charge,
    CounterState,
    Ledger,
    LedgerRefused,
    LedgerUnavailable,
    Period,
    Reservation,
    refuses,
)
from gateway.settlements import OUTAGE, Settlements

from .alerts import AlertSink
from .store import BudgetStore
from .tables import BudgetRow

log = logging.getLogger("aitp.budgets")
UNCAPPED = 1e18  # alert/downgrade budgets are tracked, never refused
UNITS = ("tokens", "usd")
T = TypeVar("T")
# An alert claim only has to outlive its window (plus slack); a total budget's claims are kept.
_CLAIM_TTL_S = {"day": 3 * 86400.0, "month": 33 * 86400.0}
# A refusal caused by other requests' reservations clears when they settle, which for most calls is
# seconds away; the header says to come back then, not at the budget's reset.
IN_FLIGHT_RETRY_S = 3


class BudgetExceeded(RateLimited):
    type = "budget_exceeded"
    code = "budget_exceeded"


def _limit(budget: BudgetRow, unit: str) -> float | None:
    if unit == "tokens":
        return float(budget.limit_tokens) if budget.limit_tokens else None
    return budget.limit_usd


def counter(budget: BudgetRow, unit: str) -> str:
    return f"budget:{budget.id}:{unit}"


def budget_counter_of(counter_id: str) -> tuple[str, str] | None:
    """``(budget id, unit)`` of a counter made by :func:`counter`; None for any other counter."""
    kind, _, rest = counter_id.partition(":")
    budget_id, _, unit = rest.rpartition(":")
    return (budget_id, unit) if kind == "budget" and budget_id and unit in UNITS else None


@dataclass(slots=True)
class Plan:
    """The budgets that apply to a request, and whether one asks to downgrade it."""

    budgets: list[BudgetRow]
    downgrade: str | None = None


@dataclass(slots=True)
class Admission:
    reservation: Reservation | None
    budgets: list[BudgetRow]
    key_id: str
    has_tpm: bool
    has_rpm: bool
    max_tokens: int | None = None  # the completion allowance reserved (sent upstream as max_tokens)
    shrunk: bool = False
    states: dict[str, CounterState] = field(default_factory=dict)


class BudgetEnforcer:
    def __init__(
        self,
        store: BudgetStore,
        ledger: Ledger,
        alerts: AlertSink,
        settings: BudgetSettings,
        registry: CollectorRegistry,
        settlements: Settlements,
        clock: Clock,
    ) -> None:
        self._store = store
        self._clock = clock
        self._ledger = ledger
        self._settlements = settlements
        self._alerts = alerts
        self._settings = settings
        # Alert keys this process has seen claimed (by anyone): a settle near a budget's end would
        # otherwise repeat one ledger round trip per crossed threshold on every call.
        self._claimed: OrderedDict[str, None] = OrderedDict()
        self.used_ratio = Gauge(
            "aitp_budget_used_ratio", "Share of a budget used in its current window", ["scope"], registry=registry
        )
        self.ledger_seconds = Histogram(
            "aitp_ledger_seconds",
            "Time spent in the budget ledger per request step",
            ["op"],
            buckets=(0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.5),
            registry=registry,
        )
        self.rate_limited = Counter(
            "aitp_rate_limited_total", "Requests refused by budgets or rate limits", ["reason"], registry=registry
        )

    @property
    def ledger(self) -> Ledger:
        return self._ledger

    async def plan(self, principal: Principal, user: str | None) -> Plan:
        budgets = await self._store.applicable(principal.project_id, principal.key_id, user)
        plan = Plan(budgets=budgets)
        downgrading = [b for b in budgets if b.action == "downgrade"]
        if not downgrading:
            return plan
        wanted = [(counter(b, u), Period(b.period), _limit(b, u)) for b in downgrading for u in UNITS if _limit(b, u)]
        states = await self._guard(self._ledger.snapshot(wanted)) or {}
        for budget in downgrading:
            for unit in UNITS:
                limit = _limit(budget, unit)
                state = states.get(counter(budget, unit))
                if limit and state and (state.used + state.reserved) / limit >= budget.downgrade_at:
                    plan.downgrade = "budget_downgrade"
                    return plan
        return plan

    def completion_allowance(self, requested: int | None) -> int:
        ceiling = self._settings.max_tokens_ceiling
        return min(requested, ceiling) if requested else ceiling

    def prompt_estimate(self, counted: int) -> int:
        return math.ceil(counted * (1 + self._settings.prompt_token_margin)) + 8

    async def admit(
        self,
        plan: Plan,
        principal: Principal,
        prompt_tokens: int,
        completion_tokens: int,
        usd_per_prompt_token: float,
        usd_per_completion_token: float,
    ) -> Admission:
        """Reserve the worst case everywhere it applies, or raise 429 naming the scope."""
        admission = Admission(
            reservation=None,
            budgets=plan.budgets,
            key_id=principal.key_id,
            has_tpm=principal.tpm is not None,
            has_rpm=principal.rpm is not None,
            max_tokens=completion_tokens,
        )
        if not plan.budgets and principal.rpm is None and principal.tpm is None:
            return admission

        def charges(completion: int) -> list[Charge]:
            tokens = prompt_tokens + completion
            usd = prompt_tokens * usd_per_prompt_token + completion * usd_per_completion_token
            out: list[Charge] = []
            for budget in plan.budgets:
                period = Period(budget.period)
                for unit, amount in (("tokens", float(tokens)), ("usd", usd)):
                    limit = _limit(budget, unit)
                    if limit:
                        cap = limit if budget.action == "block" else UNCAPPED
                        out.append(Charge(counter(budget, unit), cap, period, amount))
            if principal.rpm is not None:
                out.append(Charge(f"rl:key:{principal.key_id}:rpm", float(principal.rpm), Period.MINUTE, 1.0))
            if principal.tpm is not None:
                out.append(Charge(f"rl:key:{principal.key_id}:tpm", float(principal.tpm), Period.MINUTE, float(tokens)))
            return out

        def shrink(refused: LedgerRefused, room: float) -> int | None:
            return self._shrink(
                refused, room, prompt_tokens, completion_tokens, usd_per_prompt_token, usd_per_completion_token
            )

        async def refuse(refused: LedgerRefused) -> RateLimited:
            # Would this request fit, whole or shrunk, once the requests in flight have settled?
            in_flight = (
                refused.counter.startswith("budget:")
                and refused.reserved > TOLERANCE
                and (
                    not refuses(used=refused.used, reserved=0.0, amount=refused.amount, limit=refused.limit)
                    or shrink(refused, refused.limit - refused.used) is not None
                )
            )
            if not in_flight:
                await self._exhausted(refused, plan)
            return self._refusal(refused, plan, in_flight=in_flight)

        started = time.perf_counter()
        try:
            admission.reservation = await self._guard(
                self._ledger.reserve(charges(completion_tokens), ttl_s=self._settings.reservation_ttl_s)
            )
            return admission
        except LedgerRefused as refused:
            shrunk = shrink(refused, refused.remaining)
            if shrunk is None:
                raise await refuse(refused) from None
        finally:
            self.ledger_seconds.labels("reserve").observe(time.perf_counter() - started)
        # Near a budget's end: reserve what remains and cap max_tokens to it instead of refusing outright.
        try:
            admission.reservation = await self._guard(
                self._ledger.reserve(charges(shrunk), ttl_s=self._settings.reservation_ttl_s)
            )
        except LedgerRefused as refused:
            raise await refuse(refused) from None
        admission.max_tokens = shrunk
        admission.shrunk = True
        return admission

    def _shrink(
        self,
        refused: LedgerRefused,
        room: float,
        prompt: int,
        completion: int,
        usd_prompt: float,
        usd_completion: float,
    ) -> int | None:
        """The completion allowance that fits in ``room`` of the refusing counter, if a useful one does."""
        if refused.counter.startswith("rl:"):
            # A rate limit frees up within the minute: refuse with retry-after rather than truncate.
            return None
        if refused.counter.endswith(":usd"):
            if usd_completion <= 0:
                return None
            allowance = math.floor((room - prompt * usd_prompt) / usd_completion)
        else:
            allowance = math.floor(room - prompt)
        allowance = min(allowance, completion - 1)
        return allowance if allowance >= self._settings.min_completion_tokens else None

    def _refusal(self, refused: LedgerRefused, plan: Plan, *, in_flight: bool = False) -> RateLimited:
        """429 naming the scope; ``in_flight``: the room is only held by requests in flight, not used up."""
        resets = utc_iso(refused.resets_at)
        retry = None
        if refused.resets_at is not None:
            retry = max(1, math.ceil((refused.resets_at - self._clock.now()).total_seconds()))
        headers = {"retry-after": str(retry)} if retry else {}
        if refused.counter.startswith("rl:"):
            kind = refused.counter.rsplit(":", 1)[-1]
            self.rate_limited.labels(kind).inc()
            return RateLimited(
                f"rate limit exceeded: this key allows {refused.limit:g} {'requests' if kind == 'rpm' else 'tokens'} "
                f"a minute; retry after {resets}",
                headers=headers,
                extra={"scope": f"key/{kind}", "remaining": max(0.0, refused.remaining), "resets_at": resets},
            )
        self.rate_limited.labels("budget").inc()
        budget_id, unit = refused.counter.split(":")[1:3]
        budget = next((b for b in plan.budgets if b.id == budget_id), None)
        name = budget.name if budget else budget_id
        left = max(0.0, refused.remaining)
        amount = (
            f"{left:.0f} of {refused.limit:.0f} tokens"
            if unit == "tokens"
            else (f"${left:.6f} of ${refused.limit:.6f}")
        )
        extra: dict[str, object] = {
            "scope": budget.scope if budget else None,
            "budget_id": budget_id,
            "unit": unit,
            "remaining": left,
            "reserved": refused.reserved,
            "limit": refused.limit,
            "resets_at": resets,
            "reason": "reserved_in_flight" if in_flight else "exhausted",
        }
        if in_flight:
            if unit == "tokens":
                held = f"{refused.reserved:,.0f} tokens are"
                now = f"{left:,.0f} of {refused.limit:,.0f} tokens"
            else:
                held = f"${refused.reserved:.6f} is"
                now = f"${left:.6f} of ${refused.limit:.6f}"
            return BudgetExceeded(
                f"budget '{name}' is busy: {held} reserved by requests in flight, {now} free until they finish; "
                "retry in a few seconds",
                headers={"retry-after": str(IN_FLIGHT_RETRY_S)},
                extra=extra,
            )
        when = f"resets {resets}" if resets else "a total budget never resets; ask an admin to raise it"
        return BudgetExceeded(
            f"budget '{name}' exhausted: {amount} left, not enough for this request; {when}",
            headers=headers,
            extra=extra,
        )

    async def settle(self, admission: Admission, prompt_tokens: int, completion_tokens: int, usd: float) -> None:
        if admission.reservation is None:
            return
        tokens = float(prompt_tokens + completion_tokens)
        actual: dict[str, float] = {}
        for budget in admission.budgets:
            actual[counter(budget, "tokens")] = tokens
            actual[counter(budget, "usd")] = usd
        actual[f"rl:key:{admission.key_id}:rpm"] = 1.0
        actual[f"rl:key:{admission.key_id}:tpm"] = tokens
        reservation = admission.reservation

        async def settle() -> None:
            states = await self._ledger.settle(reservation, actual)
            try:
                await self._check_thresholds(admission.budgets, states)
            except OUTAGE as exc:
                # The usage is settled; a missed alert fires on the next settle that crosses it.
                log.warning("checking budget alerts failed (%s)", type(exc).__name__)

        started = time.perf_counter()
        try:
            # The upstream call happened: this never raises, and a settle the ledger refuses now lands later.
            await self._settlements.run("settling a reservation", settle)
        finally:
            self.ledger_seconds.labels("settle").observe(time.perf_counter() - started)

    async def release(self, admission: Admission) -> None:
        if admission.reservation is None:
            return
        reservation = admission.reservation

        async def release() -> None:
            await self._ledger.release(reservation)

        await self._settlements.run("releasing a reservation", release)

    def _remember(self, key: str) -> None:
        self._claimed[key] = None
        if len(self._claimed) > 10_000:
            self._claimed.popitem(last=False)

    async def _exhausted(self, refused: LedgerRefused, plan: Plan) -> None:
        """A block budget refused a request: it is full for practical purposes, so its 100% alert fires.

        With worst-case reservations ``used`` stops just short of the limit, so the plain ratio would
        never reach 1.0.
        """
        if not refused.counter.startswith("budget:"):
            return
        budget_id, unit = refused.counter.split(":")[1:3]
        budget = next((b for b in plan.budgets if b.id == budget_id), None)
        if budget is None:
            return
        try:
            states = await self._ledger.snapshot([(refused.counter, Period(budget.period), _limit(budget, unit))])
            await self._check_thresholds([budget], states, exhausted=refused.counter)
        except LedgerUnavailable:
            log.error("checking an exhausted budget's alerts failed: the ledger is unreachable")

    async def _check_thresholds(
        self, budgets: list[BudgetRow], states: dict[str, CounterState], exhausted: str | None = None
    ) -> None:
        for budget in budgets:
            for unit in UNITS:
                limit = _limit(budget, unit)
                state = states.get(counter(budget, unit))
                if not limit or state is None:
                    continue
                ratio = state.used / limit
                if exhausted == counter(budget, unit):
                    ratio = max(ratio, 1.0)
                self.used_ratio.labels(budget.name).set(ratio)
                window = utc_iso(state.window_start) or "total"
                for threshold in budget.thresholds:
                    if ratio + 1e-12 < threshold:
                        break
                    key = f"alert:{budget.id}:{unit}:{window}:{threshold:g}"
                    if key in self._claimed:
                        continue
                    won = await self._ledger.claim_once(key, ttl_s=_CLAIM_TTL_S.get(budget.period))
                    self._remember(key)
                    if won:
                        try:
                            await self._alerts.emit(budget, unit, threshold, state.used, limit, window)
                        except Exception:
                            # The call itself succeeded and is paid for; a lost alert row must not fail it.
                            log.exception("recording a budget alert failed", extra={"budget_id": budget.id})

    async def status(self, budget: BudgetRow) -> dict[str, object]:
        wanted = [(counter(budget, u), Period(budget.period), _limit(budget, u)) for u in UNITS if _limit(budget, u)]
        states = await self._guard(self._ledger.snapshot(wanted)) or {}
        out: dict[str, object] = {"budget_id": budget.id, "name": budget.name, "action": budget.action}
        current = "ok"
        for unit in UNITS:
            limit = _limit(budget, unit)
            state = states.get(counter(budget, unit))
            if not limit or state is None:
                continue
            used = state.used
            ratio = used / limit
            out[unit] = {
                "limit": limit,
                "used": used,
                "reserved": state.reserved,
                "remaining": max(0.0, limit - used - state.reserved),
                "used_ratio": ratio,
                "window_start": utc_iso(state.window_start),
                "resets_at": utc_iso(state.resets_at),
            }
            # Requests reserve their worst case, so a block budget refuses before `used` reaches the limit:
            # call it blocking once what remains cannot take even a minimal request.
            floor = self._settings.min_completion_tokens + 8 if unit == "tokens" else 0.01 * limit
            if budget.action == "block" and limit - used - state.reserved < floor:
                current = "blocking"
            elif budget.action == "downgrade" and (used + state.reserved) / limit >= budget.downgrade_at:
                current = "downgrading"
        out["current_action"] = current
        return out

    async def _guard(self, awaitable: Awaitable[T]) -> T | None:
        try:
            return await awaitable
        except LedgerUnavailable as exc:
            log.error("budget ledger unreachable: %s", exc)
            if self._settings.fail_open:
                log.error("budget ledger unreachable; serving unbudgeted (budgets.fail_open=true): %s", exc)
                return None
            raise ServiceUnavailable(
                f"the budget ledger is unreachable ({exc}); requests are refused until it is back "
                "(set budgets.fail_open=true to serve unbudgeted instead)",
                code="ledger_unavailable",
            ) from None
