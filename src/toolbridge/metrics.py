"""Prometheus metrics of one gateway, in a registry of its own (no module-level globals).

With `serve --workers N`, any worker may answer a scrape: each process's counts go to files
of its own in a folder the serving parent made (`MULTIPROCESS_ENV`, read by prometheus_client
as it is imported, before any metric exists), and `/metrics` sums every worker's, those of
workers that were restarted included, so that counters never go back.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


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

        self.output_mismatches = Counter(
            "toolbridge_output_mismatches",
            "Successful answers that did not fit the tool's output schema (passed on as they "
            "were), by tool.",
            ["tool"],
            registry=self.registry,
        )
        # Finding a labelled child costs more than using it: keep them (tools x outcomes).
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}

    def observe(self, tool: str, outcome: str, seconds: float) -> None:
        children = self._children.get((tool, outcome))
        if children is None:
            children = (
                self.calls.labels(tool=tool, outcome=outcome),
                self.duration.labels(outcome=outcome),
            )
            self._children[(tool, outcome)] = children
        children[0].inc()
        children[1].observe(seconds)

    def output_mismatch(self, tool: str) -> None:
        self.output_mismatches.labels(tool=tool).inc()

    def exposition(self) -> bytes:
        folder = os.environ.get(MULTIPROCESS_ENV)
        if not folder:
            return generate_latest(self.registry)
        from prometheus_client.multiprocess import MultiProcessCollector

        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker, path=folder)  # type: ignore[no-untyped-call]
        return generate_latest(every_worker)
