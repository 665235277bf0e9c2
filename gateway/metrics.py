"""Prometheus metrics of the gateway (low-cardinality labels only)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "aitp_requests_total", "Gateway calls", ["endpoint", "tier", "status"], registry=registry
        )
        self.duration = Histogram(
            "aitp_request_duration_seconds",
            "Gateway call duration, upstream included",
            ["endpoint"],
            buckets=_BUCKETS,
            registry=registry,
        )
        # model: the deployment's label (provider/model), a short list fixed by the configuration.
        self.tokens = Counter("aitp_tokens_total", "Tokens used", ["kind", "tier", "model"], registry=registry)
        self.spend = Counter("aitp_spend_usd_total", "Spend in USD", ["tier", "model"], registry=registry)
        self.spend_all_plus = Counter(
            "aitp_spend_all_plus_usd_total",
            "What the same chat tokens would have cost at the plus tier's price (savings = this - spend)",
            ["tier"],
            registry=registry,
        )
        self.upstream_duration = Histogram(
            "aitp_upstream_duration_seconds",
            "Time spent in upstream model calls, litellm's retries and fallbacks included",
            ["endpoint"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.route_decisions = Counter(
            "aitp_route_decisions_total", "Routing decisions", ["tier", "reason"], registry=registry
        )
