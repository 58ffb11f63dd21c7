"""Prometheus metrics of one gateway, in a registry of its own (no module-level globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "toolbridge_tool_calls",
            "Tool calls by tool and outcome.",
            ["tool", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "toolbridge_tool_call_seconds",
            "Time to answer a tool call.",
            ["outcome"],
            registry=self.registry,
        )

    def observe(self, tool: str, outcome: str, seconds: float) -> None:
        self.calls.labels(tool=tool, outcome=outcome).inc()
        self.duration.labels(outcome=outcome).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
