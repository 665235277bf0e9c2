"""Prometheus metrics of the gateway (low-cardinality labels only)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "aitp_requests_total", "Gateway calls", ["endpoint", "tier", "status"], registry=registry
        )
        self.duration = Histogram(
            "aitp_request_duration_seconds",
            "Gateway call duration, upstream included",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.tokens = Counter("aitp_tokens_total", "Tokens used", ["kind", "tier"], registry=registry)
        self.spend = Counter("aitp_spend_usd_total", "Spend in USD", ["tier"], registry=registry)
        self.route_decisions = Counter(
            "aitp_route_decisions_total", "Routing decisions", ["tier", "reason"], registry=registry
        )
