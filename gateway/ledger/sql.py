"""The ledger on SQL: SQLite for embedded mode, PostgreSQL for replicas.

Every write runs in one short transaction that holds the counter rows it
touches, so checks and updates cannot interleave:

- SQLite: ``BEGIN IMMEDIATE`` takes the database's single write lock up front
  (other processes wait through ``busy_timeout``), and an in-process lock keeps
  this process's own writers from queueing on that busy handler.
- PostgreSQL: reserve creates missing counter rows and locks existing ones in
  one upsert (``INSERT … ON CONFLICT DO UPDATE … RETURNING``); settle locks them
  with ``SELECT … FOR UPDATE``. Both go in code point order of (counter,
  window), so requests that share counters cannot deadlock. Reservation rows
  are only ever deleted while their counter row is locked.

Amounts are double-precision floats compared with a 1e-9 tolerance: exact
enough for USD at ~1e-7 per token and for token counts, and the same type the
Redis backend keeps. Times in the tables are unix seconds, so both dialects
compare them the same way. Now and then a reserve purges windows that ended
long ago (``windows.KEEP_AFTER_END_S``), so per-minute rate-limit rows do not
pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.clock import Clock
from core.db import Base
from gateway.ledger.base import (
    Charge,
    CounterState,
    LedgerRefused,
    LedgerUnavailable,
    Period,
    Reservation,
    check_charges,
    refuses,
)
from gateway.ledger.windows import Window, oldest_kept_keys, window_for, window_from_key

log = logging.getLogger("aitp.gateway.ledger")

counters_table = Table(
    "ledger_counters",
    Base.metadata,
    Column("counter", String(255), nullable=False),
    Column("window_key", String(32), nullable=False),
    Column("used", Float, nullable=False),
    Column("reserved", Float, nullable=False),
    # Open reservations: at 0, reserved is exactly 0 (float drift never leaves a phantom hold).
    Column("holds", Integer, nullable=False),
    Column("limit_value", Float, nullable=True),  # the limit the last reserve checked, for alerts and dashboards
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("counter", "window_key"),
    Index("ix_ledger_counters_window_key", "window_key"),
)

reservations_table = Table(
    "ledger_reservations",
    Base.metadata,
    Column("id", String(64), nullable=False),
    Column("counter", String(255), nullable=False),
    Column("window_key", String(32), nullable=False),
    Column("amount", Float, nullable=False),
    Column("expires_at", Float, nullable=False),  # unix seconds
    PrimaryKeyConstraint("id", "counter"),
    Index("ix_ledger_reservations_counter_window", "counter", "window_key", "expires_at"),
)

claims_table = Table(
    "ledger_claims",
    Base.metadata,
    Column("key", String(255), primary_key=True),
    Column("expires_at", Float, nullable=True),  # unix seconds; NULL = forever
)

_C = counters_table.c
_R = reservations_table.c
_L = claims_table.c
_ROW_COLUMNS = (_C.counter, _C.window_key, _C.used, _C.reserved, _C.holds, _C.limit_value)
_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout, OSError, TimeoutError)

_Key = tuple[str, str]  # (counter, window key)


@dataclass(slots=True)
class _Row:
    used: float = 0.0
    reserved: float = 0.0
    holds: int = 0
    limit: float | None = None

    def take(self, amount: float) -> None:
        self.reserved += amount
        self.holds += 1

    def give_back(self, amount: float) -> None:
        self.holds -= 1
        self.reserved = max(0.0, self.reserved - amount) if self.holds > 0 else 0.0


class SqlLedger:
    """:class:`~gateway.ledger.base.Ledger` on the app's database (tables from migration 0003_ledger)."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        tz: tzinfo | str = "UTC",
        *,
        timeout_s: float | None = 5.0,
        purge_every_s: float | None = 600.0,
    ) -> None:
        dialect = engine.dialect.name
        if dialect not in {"sqlite", "postgresql"}:
            raise ValueError(f"the SQL ledger supports sqlite and postgresql, not {dialect!r}")
        self._engine = engine
        self._clock = clock
        self._tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self._timeout_s = timeout_s
        self._purge_every_s = purge_every_s
        self._next_purge: float | None = None
        self._sqlite = dialect == "sqlite"
        # Snapshots are one statement, consistent on its own: no BEGIN/ROLLBACK round trips. SQLite
        # writers issue BEGIN IMMEDIATE themselves, so the driver must not open transactions either.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._writer = self._autocommit if self._sqlite else engine
        self._sqlite_writer = asyncio.Lock()
        self._dialect = sqlite if self._sqlite else postgresql
        upsert = self._dialect.insert(counters_table)
        self._upsert = upsert.on_conflict_do_update(
            index_elements=[_C.counter, _C.window_key], set_={"updated_at": upsert.excluded.updated_at}
        ).returning(*_ROW_COLUMNS)

    async def reserve(self, charges: Sequence[Charge], *, ttl_s: float = 900) -> Reservation:
        check_charges(charges, ttl_s)
        reservation_id = uuid.uuid4().hex
        now = self._clock.now()
        plan = [(charge, window_for(charge.period, now, self._tz)) for charge in charges]
        reservation = Reservation(reservation_id, tuple((c.counter, w.key, c.amount) for c, w in plan))
        if not plan:
            return reservation
        async with self._write() as conn:
            refusal = await self._reserve(conn, reservation_id, plan, now, ttl_s)
        if refusal is not None:
            raise refusal
        await self._maybe_purge(now)
        return reservation

    async def settle(self, reservation: Reservation, actual: Mapping[str, float]) -> dict[str, CounterState]:
        for counter, amount in actual.items():
            if not (math.isfinite(amount) and amount >= 0):
                raise ValueError(f"actual usage of {counter!r} must be a finite number >= 0, got {amount!r}")
        if not reservation.items:
            return {}
        now = self._clock.now()
        epoch = now.timestamp()
        keys = sorted({(counter, window) for counter, window, _ in reservation.items})
        async with self._write() as conn:
            rows = await self._lock(conn, keys)
            # Whatever expired in these windows goes first; if that includes this
            # reservation it was already given back, and its usage is not recorded.
            freed = await conn.execute(
                delete(reservations_table)
                .where(
                    tuple_(_R.counter, _R.window_key).in_(keys), or_(_R.expires_at <= epoch, _R.id == reservation.id)
                )
                .returning(_R.id, _R.counter, _R.window_key, _R.amount, _R.expires_at)
            )
            touched: set[_Key] = set()
            for rid, counter, window, amount, expires_at in freed:
                row = rows.get((counter, window))
                if row is None:
                    continue
                row.give_back(amount)
                if rid == reservation.id and expires_at > epoch:
                    row.used += float(actual.get(counter, 0.0))
                touched.add((counter, window))
            await self._store(conn, rows, touched, now)
        return {
            counter: self._state(counter, rows.get((counter, window), _Row()), window_from_key(window, self._tz), None)
            for counter, window, _ in reservation.items
        }

    async def release(self, reservation: Reservation) -> None:
        await self.settle(reservation, {})

    async def snapshot(self, counters: Sequence[tuple[str, Period, float | None]]) -> dict[str, CounterState]:
        if not counters:
            return {}
        now = self._clock.now()
        windows = {counter: window_for(period, now, self._tz) for counter, period, _ in counters}
        keys = sorted({(counter, window.key) for counter, window in windows.items()})
        # Expired reservations are subtracted in the same statement (one consistent
        # read) instead of deleted: a snapshot never takes the write lock.
        expired = and_(_R.counter == _C.counter, _R.window_key == _C.window_key, _R.expires_at <= now.timestamp())
        query = select(
            _C.counter,
            _C.window_key,
            _C.used,
            _C.reserved,
            _C.holds,
            _C.limit_value,
            select(func.coalesce(func.sum(_R.amount), 0.0)).where(expired).scalar_subquery(),
            select(func.count(_R.id)).where(expired).scalar_subquery(),
        ).where(tuple_(_C.counter, _C.window_key).in_(keys))
        found: dict[_Key, _Row] = {}
        async with self._guard(), self._autocommit.connect() as conn:
            for counter, window, used, reserved, holds, limit, gone, gone_count in await conn.execute(query):
                left = holds - gone_count
                found[(counter, window)] = _Row(used, max(0.0, reserved - gone) if left > 0 else 0.0, left, limit)
        return {
            counter: self._state(counter, found.get((counter, windows[counter].key), _Row()), windows[counter], limit)
            for counter, _, limit in counters
        }

    async def claim_once(self, key: str, ttl_s: float | None = None) -> bool:
        epoch = self._clock.now().timestamp()
        expires_at = None if ttl_s is None else epoch + ttl_s
        async with self._write() as conn:
            await conn.execute(delete(claims_table).where(_L.key == key, _L.expires_at <= epoch))
            claimed = await conn.execute(
                self._insert_ignore(claims_table, [{"key": key, "expires_at": expires_at}]).returning(_L.key)
            )
            return claimed.first() is not None

    async def close(self) -> None:
        """Nothing to do: the engine belongs to the app, which disposes of it."""

    async def purge(self) -> None:
        """Delete windows that ended long ago, their leftover reservations, and expired claims."""
        now = self._clock.now()
        epoch = now.timestamp()
        oldest = oldest_kept_keys(now, self._tz)
        ended = or_(*(and_(func.length(_C.window_key) == len(key), _C.window_key < key) for key in oldest.values()))
        # Separate transactions: purge never holds one lock while waiting for another.
        for statement in (
            delete(counters_table).where(ended),
            # Only orphans: an expired reservation whose counter row still exists (a TOTAL window
            # nobody touched since) is given back by the next reserve or settle of that counter.
            delete(reservations_table).where(
                _R.expires_at <= epoch,
                ~select(_C.counter).where(_C.counter == _R.counter, _C.window_key == _R.window_key).exists(),
            ),
            delete(claims_table).where(_L.expires_at <= epoch),
        ):
            async with self._write() as conn:
                await conn.execute(statement)

    async def _reserve(
        self, conn: AsyncConnection, reservation_id: str, plan: list[tuple[Charge, Window]], now: datetime, ttl_s: float
    ) -> LedgerRefused | None:
        epoch = now.timestamp()
        keys = sorted({(charge.counter, window.key) for charge, window in plan})
        rows = await self._create_and_lock(conn, keys, now)
        touched = await self._expire(conn, keys, epoch, rows)
        for charge, window in plan:
            row = rows[(charge.counter, window.key)]
            if refuses(used=row.used, reserved=row.reserved, amount=charge.amount, limit=charge.limit):
                await self._store(conn, rows, touched, now)  # keep the expiry work
                return LedgerRefused(
                    charge.counter,
                    limit=charge.limit,
                    used=row.used,
                    reserved=row.reserved,
                    amount=charge.amount,
                    resets_at=window.end,
                )
        for charge, window in plan:
            row = rows[(charge.counter, window.key)]
            row.take(charge.amount)
            row.limit = charge.limit
        await self._store(conn, rows, set(keys), now)
        expires_at = epoch + ttl_s
        await conn.execute(
            insert(reservations_table),
            [
                {
                    "id": reservation_id,
                    "counter": charge.counter,
                    "window_key": window.key,
                    "amount": charge.amount,
                    "expires_at": expires_at,
                }
                for charge, window in plan
            ],
        )
        return None

    async def _create_and_lock(self, conn: AsyncConnection, keys: list[_Key], now: datetime) -> dict[_Key, _Row]:
        """Read the counter rows of ``keys`` (sorted), creating missing ones; on PostgreSQL this locks them in order.

        One upsert does it: ``ON CONFLICT DO UPDATE`` locks an existing row, and
        the rows are processed in the order given, so every transaction takes
        its locks in the same (code point) order.
        """
        fresh = {"used": 0.0, "reserved": 0.0, "holds": 0, "limit_value": None, "updated_at": now}
        # A list of parameters (not .values([...])) keeps the statement cached; SQLAlchemy still
        # sends it as one multi-row INSERT, in this order.
        result = await conn.execute(self._upsert, [{"counter": c, "window_key": w, **fresh} for c, w in keys])
        return {(c, w): _Row(used, reserved, holds, limit) for c, w, used, reserved, holds, limit in result}

    async def _lock(self, conn: AsyncConnection, keys: list[_Key]) -> dict[_Key, _Row]:
        """Read the existing counter rows of ``keys``; on PostgreSQL lock them in the order reserve does."""
        order = [_C.counter, _C.window_key] if self._sqlite else [_C.counter.collate("C"), _C.window_key.collate("C")]
        result = await conn.execute(
            select(*_ROW_COLUMNS).where(tuple_(_C.counter, _C.window_key).in_(keys)).order_by(*order).with_for_update()
        )
        return {(c, w): _Row(used, reserved, holds, limit) for c, w, used, reserved, holds, limit in result}

    async def _expire(self, conn: AsyncConnection, keys: list[_Key], epoch: float, rows: dict[_Key, _Row]) -> set[_Key]:
        """Give back reservations in ``keys`` whose time is up (a replica died holding them)."""
        if not any(rows[key].holds for key in keys):
            return set()  # nothing open, nothing to expire: skip the statement
        freed = await conn.execute(
            delete(reservations_table)
            .where(tuple_(_R.counter, _R.window_key).in_(keys), _R.expires_at <= epoch)
            .returning(_R.counter, _R.window_key, _R.amount)
        )
        touched: set[_Key] = set()
        for counter, window, amount in freed:
            rows[(counter, window)].give_back(amount)
            touched.add((counter, window))
        return touched

    async def _store(self, conn: AsyncConnection, rows: dict[_Key, _Row], keys: Iterable[_Key], now: datetime) -> None:
        params: list[dict[str, Any]] = []
        for counter, window in sorted(keys):
            row = rows.get((counter, window))
            if row is not None:
                params.append(
                    {
                        "k_counter": counter,
                        "k_window": window,
                        "v_used": row.used,
                        "v_reserved": row.reserved,
                        "v_holds": row.holds,
                        "v_limit": row.limit,
                        "v_at": now,
                    }
                )
        if not params:
            return
        await conn.execute(
            update(counters_table)
            .where(_C.counter == bindparam("k_counter"), _C.window_key == bindparam("k_window"))
            .values(
                used=bindparam("v_used"),
                reserved=bindparam("v_reserved"),
                holds=bindparam("v_holds"),
                limit_value=bindparam("v_limit"),
                updated_at=bindparam("v_at"),
            ),
            params,
        )

    def _insert_ignore(self, table: Table, values: list[dict[str, Any]]) -> Any:
        return self._dialect.insert(table).values(values).on_conflict_do_nothing()

    def _state(self, counter: str, row: _Row, window: Window, limit: float | None) -> CounterState:
        return CounterState(
            counter=counter,
            used=row.used,
            reserved=row.reserved,
            limit=row.limit if limit is None else limit,
            window_start=window.start,
            resets_at=window.end,
        )

    async def _maybe_purge(self, now: datetime) -> None:
        if self._purge_every_s is None:
            return
        epoch = now.timestamp()
        if self._next_purge is None:
            self._next_purge = epoch + self._purge_every_s
        if epoch < self._next_purge:
            return
        self._next_purge = epoch + self._purge_every_s
        try:
            await self.purge()
        except (SQLAlchemyError, LedgerUnavailable) as exc:
            # Housekeeping only: the reservation already committed, and the next purge retries.
            log.warning("ledger purge failed: %s", exc)

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        """Bound the time one operation may take, and report an unreachable database as LedgerUnavailable."""
        try:
            async with asyncio.timeout(self._timeout_s):
                yield
        except _UNAVAILABLE as exc:
            raise LedgerUnavailable(f"ledger database unavailable: {type(exc).__name__}: {exc}") from exc

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction, serialised against every other writer of the same rows."""
        async with self._guard():
            if not self._sqlite:
                async with self._writer.begin() as conn:
                    yield conn
                return
            async with self._sqlite_writer, self._writer.connect() as conn:
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    # A broken connection cannot roll back; the error that broke it is the one to report.
                    with contextlib.suppress(SQLAlchemyError, OSError):
                        await conn.exec_driver_sql("ROLLBACK")
                    raise
                await conn.exec_driver_sql("COMMIT")
