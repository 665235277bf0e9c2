"""Virtual keys: ``sk-aitp-…``, shown once, stored as a SHA-256 hash with a visible prefix.

A key is looked up on every request (one indexed read), so a revocation takes
effect at once on every replica that shares the database.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from core.clock import Clock
from core.errors import NotFound, Unauthorized
from core.timefmt import aware, utc_iso

from .principal import DEFAULT_PROJECT, ROOT_KEY_ID, Principal, Role
from .tables import ApiKeyRow

KEY_PREFIX = "sk-aitp-"
VISIBLE = len(KEY_PREFIX) + 6


def hash_key(key: str) -> str:
    # Keys carry ~190 bits of randomness, so a fast hash is enough (no salt or KDF needed).
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class NewKey:
    spec: ApiKeyRow
    secret: str


def key_view(row: ApiKeyRow, now: datetime) -> dict[str, object]:
    expires = aware(row.expires_at)
    status = "revoked" if row.revoked_at else ("expired" if expires and expires <= now else "active")
    return {
        "id": row.id,
        "project": row.project_id,
        "name": row.name,
        "prefix": row.prefix,
        "role": row.role,
        "allowed_models": row.allowed_models,
        "expires_at": utc_iso(expires),
        "rpm": row.rpm,
        "tpm": row.tpm,
        "status": status,
        "created_at": utc_iso(row.created_at),
        "created_by": row.created_by,
        "revoked_at": utc_iso(row.revoked_at),
        "revoked_reason": row.revoked_reason,
    }


class KeyStore:
    def __init__(self, engine: AsyncEngine, admin_key: str, clock: Clock) -> None:
        self._clock = clock
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._admin_hash = hash_key(admin_key)
        # Built once: authentication runs on every request.
        self._by_hash = select(ApiKeyRow).where(ApiKeyRow.key_hash == bindparam("digest"))

    async def create(
        self,
        *,
        project_id: str,
        name: str,
        role: Role,
        allowed_models: Sequence[str] | None,
        expires_at: datetime | None,
        rpm: int | None,
        tpm: int | None,
        created_by: str,
    ) -> NewKey:
        secret = new_key()
        row = ApiKeyRow(
            id="key_" + secrets.token_hex(8),
            project_id=project_id,
            name=name,
            prefix=secret[:VISIBLE],
            key_hash=hash_key(secret),
            role=role,
            allowed_models=list(allowed_models) if allowed_models is not None else None,
            expires_at=expires_at,
            rpm=rpm,
            tpm=tpm,
            created_at=self._clock.now(),
            created_by=created_by,
        )
        async with self._sessions.begin() as session:
            session.add(row)
        return NewKey(spec=row, secret=secret)

    async def find(self, project_id: str | None) -> list[ApiKeyRow]:
        query = select(ApiKeyRow).order_by(ApiKeyRow.created_at)
        if project_id is not None:
            query = query.where(ApiKeyRow.project_id == project_id)
        async with self._sessions() as session:
            return list((await session.scalars(query)).all())

    async def get(self, key_id: str) -> ApiKeyRow:
        async with self._sessions() as session:
            row = await session.get(ApiKeyRow, key_id)
        if row is None:
            raise NotFound(f"no key '{key_id}'; GET /api/keys lists them", code="key_not_found")
        return row

    async def revoke(self, key_id: str, reason: str) -> ApiKeyRow:
        now = self._clock.now()
        async with self._sessions.begin() as session:
            await session.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason=reason)
            )
        return await self.get(key_id)

    async def authenticate(self, authorization: str | None) -> Principal:
        presented = _bearer(authorization)
        digest = hash_key(presented)
        if hmac.compare_digest(digest, self._admin_hash):
            return Principal(key_id=ROOT_KEY_ID, project_id=DEFAULT_PROJECT, role="admin", root=True)
        async with self._sessions() as session:
            row = (await session.scalars(self._by_hash, {"digest": digest})).first()
        if row is None:
            raise Unauthorized("invalid API key: no such key; check the key or ask an admin for a new one")
        if row.revoked_at is not None:
            why = f" ({row.revoked_reason})" if row.revoked_reason else ""
            raise Unauthorized(
                f"API key {row.prefix}… was revoked at {utc_iso(row.revoked_at)}{why}; ask an admin for a new one",
                code="key_revoked",
            )
        expires = aware(row.expires_at)
        if expires is not None and expires <= self._clock.now():
            raise Unauthorized(
                f"API key {row.prefix}… expired at {utc_iso(expires)}; ask an admin for a new one", code="key_expired"
            )
        return Principal(
            key_id=row.id,
            project_id=row.project_id,
            role=row.role,  # type: ignore[arg-type]
            allowed_models=frozenset(row.allowed_models) if row.allowed_models is not None else None,
            rpm=row.rpm,
            tpm=row.tpm,
            expires_at=expires,
        )


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized(
            "missing API key: send 'Authorization: Bearer sk-aitp-…' (the openai SDK's api_key)", code="missing_api_key"
        )
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("malformed Authorization header: use 'Bearer <key>'", code="invalid_api_key")
    return token
