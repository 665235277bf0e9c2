"""Database: one async engine per process, Alembic migrations applied on start.

SQLite (embedded, ``./data/aitp.db``) and PostgreSQL (``AITP_DATABASE_URL``)
share one schema; migrations live in ``core/migrations``.
"""

from __future__ import annotations

import re
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# asyncpg names the offending bound value in its message ("query argument $3: 'abc' (expected int…)").
_BOUND_VALUE = re.compile(r"(query argument \$\d+): .*? \(")


class Base(DeclarativeBase):
    """Declarative base shared by every package's tables."""


def create_engine(url: str, pool_size: int = 5, max_overflow: int = 10) -> AsyncEngine:
    """An engine whose errors and echo show statements without their values.

    Bound values include key hashes and whatever a client sent, and error
    messages end up in logs: ``hide_parameters`` keeps them out.
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # Small pools: every replica and worker holds its own, and PostgreSQL allows ~100 connections in all.
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True, hide_parameters=True
    )


def _sqlite_pragmas(dbapi_connection: object, record: ConnectionPoolEntry) -> None:
    # WAL lets readers run beside the single writer; busy_timeout waits instead of failing.
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker:  # type: ignore[type-arg]
    return async_sessionmaker(engine, expire_on_commit=False)


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(_alembic_config(connection), "head")


async def migrate(engine: AsyncEngine) -> None:
    """Apply every pending migration (idempotent; safe with several replicas on PostgreSQL)."""
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # One replica migrates at a time; the others wait and then find nothing to do.
            await connection.exec_driver_sql("SELECT pg_advisory_xact_lock(4242001)")
        await connection.run_sync(_upgrade)


def sqlstate(exc: SQLAlchemyError) -> str | None:
    """The SQLSTATE of a database error (PostgreSQL); None when the driver gives none (SQLite)."""
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    code = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    return str(code) if code else None


def describe_error(exc: SQLAlchemyError) -> str:
    """A database error for the log: its kind, first message line and statement, without any value.

    PostgreSQL's DETAIL line quotes the row (``Key (key_hash)=(…) already exists``) and asyncpg
    quotes the bound value it could not encode, so only the first line is kept, with values masked.
    """
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    driver = getattr(orig, "__cause__", None) or orig
    first = str(orig if orig is not None else exc).strip().splitlines()[:1]
    message = _BOUND_VALUE.sub(r"\1: <hidden> (", first[0]) if first else ""
    kind = type(exc).__name__ + (f"/{type(driver).__name__}" if driver is not None else "")
    code = sqlstate(exc)
    statement = " ".join(str(getattr(exc, "statement", "") or "").split())[:500]
    return f"{kind}{f' sqlstate {code}' if code else ''}: {message}" + (f" [SQL: {statement}]" if statement else "")
