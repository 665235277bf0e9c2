"""What ``/readyz`` checks in a process running the platform: database, Redis, the broker, Chroma, the LLM engine."""

from __future__ import annotations

from core.readiness import Check, NotReady, Readiness, blocking_check, database_check, redis_check

from .platform import Platform

READINESS_TIMEOUT_S = 2.0  # under the probes' timeoutSeconds (3 s in deploy/k8s)


def platform_readiness(platform: Platform) -> Readiness:
    checks: dict[str, Check] = {"database": database_check(platform.db)}
    if platform.redis is not None:
        checks["redis"] = redis_check(platform.redis)
    checks["broker"] = blocking_check(platform.runtime.check_broker)
    checks["chroma"] = blocking_check(platform.agents.kb.chroma.heartbeat)
    engine = platform.gateway.engine_ref

    async def llm_engine() -> str | None:
        if not engine.ready:
            raise NotReady("litellm is still loading")
        return None

    checks["llm_engine"] = llm_engine
    return Readiness(checks, READINESS_TIMEOUT_S)
