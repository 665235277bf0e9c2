"""Prometheus metrics of test-case generation and review (low-cardinality labels only)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class GenerationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.cases = Counter(
            "aitp_testcases_generated_total", "Test cases stored by generation tasks", ["source"], registry=registry
        )
        self.fallbacks = Counter(
            "aitp_generation_fallbacks_total",
            "Generations that fell back to the rule-based generator, by why",
            ["reason"],
            registry=registry,
        )
        self.duplicates = Counter(
            "aitp_testcases_duplicates_dropped_total", "Near-duplicate cases dropped", registry=registry
        )
        self.reviews = Counter(
            "aitp_testcase_reviews_total", "Test-case reviews by action", ["action"], registry=registry
        )
