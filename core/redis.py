"""Redis: one bounded connection pool per process, shared by the broker, events and the ledger.

Timeouts are short on purpose: Redis answers in well under a millisecond, so a
call that takes a second means Redis is gone, and callers (the ledger above
all) must hear that quickly to fail closed instead of hanging a request.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


def create_redis(
    url: str,
    max_connections: int = 20,
    *,
    socket_timeout_s: float = 1.0,
    pool_timeout_s: float = 2.0,
    health_check_interval_s: float = 15.0,
    retries: int = 1,
) -> Redis:
    """A client on a pool of at most ``max_connections``; closing the client closes the pool.

    Callers beyond the cap wait up to ``pool_timeout_s`` for a connection rather
    than opening more. One quick retry rides over a connection that went stale
    (Redis restarted); every ledger script is idempotent, so a retry is safe.
    A Redis that accepts connections but never answers fails a call after
    about ``socket_timeout_s``.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout_s,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        health_check_interval=health_check_interval_s,
        # Only a dropped connection is retried: a timeout already cost socket_timeout_s, and retries nest
        # (connect and command), so retrying timeouts would turn 1 s into 4 s.
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), retries, supported_errors=(RedisConnectionError,)),
    )
    return Redis.from_pool(pool)
