"""The ledger on Redis: one Lua script per operation, atomic across replicas.

Per counter and window there are two keys: a hash ``{used, reserved, limit,
built, r:<reservation id>: amount}`` and a sorted set of open reservation ids scored
by their expiry (unix seconds from the ledger's clock). Every script first
gives back the reservations whose time is up, so a replica that died holding
one costs nothing once its ``ttl_s`` has passed. Keys expire a while after
their window ends (``windows.KEEP_AFTER_END_S``; TOTAL keys never do).

The scripts are idempotent, so a call retried after a lost reply cannot
reserve twice. A script touches several keys, so on Redis Cluster give all
keys one slot with a hash tag in the prefix (``"{aitp}:"``).

Redis only counts; with a :class:`~gateway.ledger.rebuild.DurableRecord` that
record is the truth. The hash of a counter the record tracks carries a
``built`` field once built; reserve and snapshot answer "needs rebuild" while it
is missing (Redis restarted empty, failed over, evicted the key), and the
ledger rebuilds the counter from the record before it admits anything (see
:mod:`gateway.ledger.rebuild` for what a rebuild cannot see).
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.clock import Clock
from gateway.ledger.base import (
    TOLERANCE,
    Charge,
    CounterState,
    LedgerRefused,
    LedgerUnavailable,
    Period,
    Reservation,
    check_charges,
)
from gateway.ledger.rebuild import DurableRecord
from gateway.ledger.windows import Window, keep_until, window_for, window_from_key

# A claim's key outlives its (clock-based) expiry a little; the stored expiry is what decides.
_CLAIM_GRACE_S = 60
# First element of a reply whose counters must be rebuilt first; the indexes of those counters follow.
_NEEDS_REBUILD = -1
# Rebuild and retry at most this often: a Redis that loses the keys again at once is not fit to count.
_REBUILD_ATTEMPTS = 3

_PRELUDE = """
local function num(v) if v then return tonumber(v) end return 0 end
local function fmt(x) return string.format('%.17g', x) end
-- With no reservation open, reserved is exactly 0: float drift never leaves a phantom hold.
local function left(z, reserved)
  if reserved < 0 or redis.call('ZCARD', z) == 0 then return 0 end
  return reserved
end
-- Give back the reservations of one counter window whose time is up; returns what stays reserved.
local function expire(h, z, now)
  local reserved = num(redis.call('HGET', h, 'reserved'))
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  if #gone == 0 then return reserved end
  local changed = false
  for _, rid in ipairs(gone) do
    local amount = redis.call('HGET', h, 'r:' .. rid)
    if amount then
      reserved = reserved - tonumber(amount)
      redis.call('HDEL', h, 'r:' .. rid)
      changed = true
    end
  end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
  reserved = left(z, reserved)
  if changed then redis.call('HSET', h, 'reserved', fmt(reserved)) end
  return reserved
end
"""

# KEYS: hash, zset per charge. ARGV: now, id, expires_at, tolerance, then per charge amount, limit, key ttl
# (0 = keep) and tracked ('1': the counter must be built first). Returns {0} when reserved, {-1, index…}
# when those charges' counters need a rebuild, else {index of the refusing charge, used, reserved}.
_RESERVE = (
    _PRELUDE
    + """
local now, id, expires_at, eps = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local field = 'r:' .. id
local n = #KEYS / 2
if redis.call('HEXISTS', KEYS[1], field) == 1 then return {0} end
local missing = {-1}
for i = 1, n do
  if ARGV[4 * i + 4] == '1' and redis.call('HEXISTS', KEYS[2 * i - 1], 'built') == 0 then
    table.insert(missing, i)
  end
end
if #missing > 1 then return missing end
local reserved = {}
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local amount, limit = tonumber(ARGV[4 * i + 1]), tonumber(ARGV[4 * i + 2])
  local r = expire(h, z, now)
  local used = num(redis.call('HGET', h, 'used'))
  local held = used + r
  -- the admission rule of gateway.ledger.base.refuses
  if held + amount > limit + eps or held >= limit - eps then return {i, fmt(used), fmt(r)} end
  reserved[i] = r
end
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local amount, ttl = tonumber(ARGV[4 * i + 1]), tonumber(ARGV[4 * i + 3])
  redis.call('HSET', h, 'reserved', fmt(reserved[i] + amount), 'limit', ARGV[4 * i + 2], field, ARGV[4 * i + 1])
  redis.call('ZADD', z, expires_at, id)
  if ttl > 0 then
    redis.call('EXPIRE', h, ttl)
    redis.call('EXPIRE', z, ttl)
  end
end
return {0}
"""
)

# KEYS: hash, zset per item. ARGV: now, id, then the actual usage per item.
# Returns used, reserved, limit ('' when unknown) per item.
_SETTLE = (
    _PRELUDE
    + """
local now, id = ARGV[1], ARGV[2]
local field = 'r:' .. id
local out = {}
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  -- expired first: a reservation whose time is up was given back, and its usage is not recorded
  local reserved = expire(h, z, now)
  local used = num(redis.call('HGET', h, 'used'))
  local amount = redis.call('HGET', h, field)
  if amount then
    used = used + tonumber(ARGV[2 + i])
    redis.call('HDEL', h, field)
    redis.call('ZREM', z, id)
    reserved = left(z, reserved - tonumber(amount))
    redis.call('HSET', h, 'used', fmt(used), 'reserved', fmt(reserved))
  end
  table.insert(out, fmt(used))
  table.insert(out, fmt(reserved))
  table.insert(out, redis.call('HGET', h, 'limit') or '')
end
return out
"""
)

# KEYS: hash, zset per counter. ARGV: now, then tracked ('1' or '0') per counter. Returns {-1, index…} when
# those counters need a rebuild, else 0 followed by used, reserved, limit ('' when unknown) per counter.
_SNAPSHOT = (
    _PRELUDE
    + """
local missing = {-1}
for i = 1, #KEYS / 2 do
  if ARGV[i + 1] == '1' and redis.call('HEXISTS', KEYS[2 * i - 1], 'built') == 0 then table.insert(missing, i) end
end
if #missing > 1 then return missing end
local out = {0}
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local reserved = expire(h, z, ARGV[1])
  table.insert(out, fmt(num(redis.call('HGET', h, 'used'))))
  table.insert(out, fmt(reserved))
  table.insert(out, redis.call('HGET', h, 'limit') or '')
end
return out
"""
)

# KEYS: one hash per counter. ARGV: now, then the durable usage and key ttl (0 = keep) per hash.
# Only a hash without the marker takes the amount, and never below what it already counts (a replica of an
# older version may have counted there): replicas that rebuild at once cannot add twice. Returns how many took it.
_REBUILD = """
local taken = 0
for i = 1, #KEYS do
  local h = KEYS[i]
  if redis.call('HEXISTS', h, 'built') == 0 then
    local used = tonumber(redis.call('HGET', h, 'used') or '0')
    local durable = tonumber(ARGV[2 * i])
    if durable > used then used = durable end
    redis.call('HSET', h, 'used', string.format('%.17g', used), 'built', ARGV[1])
    local ttl = tonumber(ARGV[2 * i + 1])
    if ttl > 0 then redis.call('EXPIRE', h, ttl) end
    taken = taken + 1
  end
end
return taken
"""

# KEYS: claim key. ARGV: now, token, expires_at ('' = forever), key ttl in ms ('' = none).
# The value is "expires_at|token"; the token makes a retried call see its own claim.
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current then
  local sep = string.find(current, '|', 1, true)
  local expires_at, owner = string.sub(current, 1, sep - 1), string.sub(current, sep + 1)
  if owner == ARGV[2] then return 1 end
  if expires_at == '' or tonumber(expires_at) > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[3] .. '|' .. ARGV[2])
if ARGV[4] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return 1
"""


class RedisLedger:
    """:class:`~gateway.ledger.base.Ledger` on Redis; every key starts with ``prefix``.

    Without a ``record`` a counter Redis lost starts again at zero; with one,
    the counters it tracks are rebuilt from its durable record first.
    """

    def __init__(
        self,
        client: Redis,
        prefix: str,
        clock: Clock,
        tz: tzinfo | str = "UTC",
        *,
        record: DurableRecord | None = None,
    ) -> None:
        self._client = client
        # "aitp" and "aitp:" both give keys like "aitp:lc:2026-11-23:budget:7:usd".
        self._prefix = prefix if not prefix or prefix.endswith(":") else f"{prefix}:"
        self._clock = clock
        self._tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self._record = record
        # One rebuild per counter window at a time in this process: after a restart every request in
        # flight finds the same counters missing, and they wait for one read of the record, not N.
        self._rebuilding: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._snapshot = client.register_script(_SNAPSHOT)
        self._rebuild_script = client.register_script(_REBUILD)
        self._claim = client.register_script(_CLAIM)

    async def reserve(self, charges: Sequence[Charge], *, ttl_s: float = 900) -> Reservation:
        check_charges(charges, ttl_s)
        now = self._clock.now()
        plan = [(charge, window_for(charge.period, now, self._tz)) for charge in charges]
        reservation = Reservation(uuid.uuid4().hex, tuple((c.counter, w.key, c.amount) for c, w in plan))
        if not plan:
            return reservation
        epoch = now.timestamp()
        keys: list[str] = []
        args: list[Any] = [epoch, reservation.id, epoch + ttl_s, TOLERANCE]
        for charge, window in plan:
            keys += self._keys(charge.counter, window.key)
            args += [charge.amount, charge.limit, _key_ttl(window, now), self._tracked(charge.counter)]
        for _ in range(_REBUILD_ATTEMPTS):
            async with self._guard():
                result = await self._reserve(keys=keys, args=args)
            if int(result[0]) != _NEEDS_REBUILD:
                break
            await self._rebuild([(plan[int(i) - 1][0].counter, plan[int(i) - 1][1]) for i in result[1:]], now)
        else:
            raise _lost_again(plan[int(i) - 1][0].counter for i in result[1:])
        index = int(result[0])
        if index:
            charge, window = plan[index - 1]
            raise LedgerRefused(
                charge.counter,
                limit=charge.limit,
                used=float(result[1]),
                reserved=float(result[2]),
                amount=charge.amount,
                resets_at=window.end,
            )
        return reservation

    async def settle(self, reservation: Reservation, actual: Mapping[str, float]) -> dict[str, CounterState]:
        for counter, amount in actual.items():
            if not (math.isfinite(amount) and amount >= 0):
                raise ValueError(f"actual usage of {counter!r} must be a finite number >= 0, got {amount!r}")
        if not reservation.items:
            return {}
        keys: list[str] = []
        args: list[Any] = [self._clock.now().timestamp(), reservation.id]
        for counter, window, _ in reservation.items:
            keys += self._keys(counter, window)
            args.append(float(actual.get(counter, 0.0)))
        async with self._guard():
            result = await self._settle(keys=keys, args=args)
        return {
            counter: _state(counter, result[3 * i : 3 * i + 3], window_from_key(window, self._tz), None)
            for i, (counter, window, _) in enumerate(reservation.items)
        }

    async def release(self, reservation: Reservation) -> None:
        await self.settle(reservation, {})

    async def snapshot(self, counters: Sequence[tuple[str, Period, float | None]]) -> dict[str, CounterState]:
        if not counters:
            return {}
        now = self._clock.now()
        windows = [window_for(period, now, self._tz) for _, period, _ in counters]
        keys = [
            key
            for (counter, _, _), window in zip(counters, windows, strict=True)
            for key in self._keys(counter, window.key)
        ]
        args: list[Any] = [now.timestamp(), *(self._tracked(counter) for counter, _, _ in counters)]
        for _ in range(_REBUILD_ATTEMPTS):
            async with self._guard():
                result = await self._snapshot(keys=keys, args=args)
            if int(result[0]) != _NEEDS_REBUILD:
                break
            await self._rebuild([(counters[int(i) - 1][0], windows[int(i) - 1]) for i in result[1:]], now)
        else:
            raise _lost_again(counters[int(i) - 1][0] for i in result[1:])
        return {
            counter: _state(counter, result[1 + 3 * i : 4 + 3 * i], windows[i], limit)
            for i, (counter, _, limit) in enumerate(counters)
        }

    async def claim_once(self, key: str, ttl_s: float | None = None) -> bool:
        epoch = self._clock.now().timestamp()
        expires_at = "" if ttl_s is None else repr(epoch + ttl_s)
        key_ttl_ms = "" if ttl_s is None else str(math.ceil((ttl_s + _CLAIM_GRACE_S) * 1000))
        async with self._guard():
            claimed = await self._claim(
                keys=[f"{self._prefix}claim:{key}"], args=[epoch, uuid.uuid4().hex, expires_at, key_ttl_ms]
            )
        return bool(int(claimed))

    async def close(self) -> None:
        """Nothing to do: the client (and its pool) belongs to the app, which closes it."""

    def _tracked(self, counter: str) -> str:
        return "1" if self._record is not None and self._record.tracks(counter) else "0"

    async def _rebuild(self, wanted: Sequence[tuple[str, Window]], now: datetime) -> None:
        """Rebuild these counter windows from the durable record (joining a rebuild already under way)."""
        waits: list[asyncio.Task[None]] = []
        fresh: list[tuple[str, Window]] = []
        for counter, window in wanted:
            running = self._rebuilding.get((counter, window.key))
            if running is None or running.done():  # a finished one may not have left the map yet
                fresh.append((counter, window))
            elif running not in waits:
                waits.append(running)
        if fresh:
            task = asyncio.create_task(self._rebuild_now(fresh, now), name="ledger-rebuild")
            pairs = [(counter, window.key) for counter, window in fresh]
            self._rebuilding.update(dict.fromkeys(pairs, task))
            task.add_done_callback(lambda done: self._rebuilt(done, pairs))
            waits.append(task)
        for task in waits:
            # Shielded: a caller that gives up (its client left) must not cancel the rebuild others wait for.
            await asyncio.shield(task)

    async def _rebuild_now(self, wanted: Sequence[tuple[str, Window]], now: datetime) -> None:
        assert self._record is not None  # only tracked counters ever need a rebuild
        amounts = await self._record.durable_usage(wanted)
        keys: list[str] = []
        args: list[Any] = [now.timestamp()]
        for counter, window in wanted:
            keys.append(self._keys(counter, window.key)[0])
            args += [float(amounts.get((counter, window.key), 0.0)), _key_ttl(window, now)]
        async with self._guard():
            await self._rebuild_script(keys=keys, args=args)

    def _rebuilt(self, task: asyncio.Task[None], pairs: Sequence[tuple[str, str]]) -> None:
        for pair in pairs:
            if self._rebuilding.get(pair) is task:
                del self._rebuilding[pair]
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have given up, and the next call retries

    def _keys(self, counter: str, window: str) -> list[str]:
        # The window goes first: window keys have fixed shapes, so no two (counter, window) pairs collide.
        return [f"{self._prefix}lc:{window}:{counter}", f"{self._prefix}lr:{window}:{counter}"]

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise LedgerUnavailable(f"ledger Redis unavailable: {type(exc).__name__}: {exc}") from exc


def _lost_again(counters: Iterable[str]) -> LedgerUnavailable:
    return LedgerUnavailable(
        f"ledger Redis keeps losing the counters of {', '.join(sorted(set(counters)))} as soon as they are rebuilt;"
        " check its memory limit and eviction policy (the ledger needs noeviction)"
    )


def _key_ttl(window: Window, now: datetime) -> int:
    """Seconds to keep a window's keys (0: forever); every reserve in the window aims at the same moment."""
    until = keep_until(window)
    return 0 if until is None else math.ceil((until - now).total_seconds())


def _state(counter: str, values: Sequence[Any], window: Window, limit: float | None) -> CounterState:
    used, reserved, stored_limit = values
    if limit is None and stored_limit not in ("", b""):
        limit = float(stored_limit)
    return CounterState(
        counter=counter,
        used=float(used),
        reserved=float(reserved),
        limit=limit,
        window_start=window.start,
        resets_at=window.end,
    )
