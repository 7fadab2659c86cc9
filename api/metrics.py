"""Prometheus metrics at /metrics, computed at scrape time from the runtime's status."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api.runtime import Runtime
from api.status import collect_status


class OneCollector(Collector):
    """Log head, projection positions and lag, partition lag, command counters."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        """Yield the current values."""
        status = collect_status(self.runtime)
        yield GaugeMetricFamily("one_log_head_position", "Highest position in the event log",
                                value=status["head"])
        yield GaugeMetricFamily("one_projected_position",
                                "Position up to which every read model is complete",
                                value=status["projected"])
        if "knowledge" in status:
            yield GaugeMetricFamily("one_knowledge_lag_events",
                                    "Events the active knowledge index is behind the log head",
                                    value=status["knowledge"]["lag"])
        yield GaugeMetricFamily("one_parked_events", "Events no projection could apply",
                                value=status["parked_events"])
        yield from _per_projection(status["items"], [
            ("one_projection_position", "Checkpoint per projection", "position"),
            ("one_projection_lag_events", "Events behind the log head", "lag")])
        yield from _per_projection(status["rebuilds"], [
            ("one_rebuild_position", "Position a running blue/green rebuild reached", "position"),
            ("one_rebuild_target_position", "Log head when the rebuild started", "target")])
        if "partitions" in status:
            consumer = GaugeMetricFamily("one_consumer_lag_records",
                                         "Records not yet committed by the workers",
                                         labels=["partition"])
            for part in status["partitions"]:
                if part["consumer_lag"] is not None:
                    consumer.add_metric([str(part["partition"])], part["consumer_lag"])
            yield consumer
        bus = self.runtime.bus
        yield CounterMetricFamily("one_commands", "Commands committed", value=bus.commands)
        yield CounterMetricFamily("one_command_batches", "Group-commit transactions",
                                  value=bus.batches)


def _per_projection(rows: list[dict[str, Any]], gauges: list[tuple[str, str, str]]) -> Iterator[Metric]:
    """One gauge per (name, help, row key), labelled by projection."""
    for name, documentation, key in gauges:
        gauge = GaugeMetricFamily(name, documentation, labels=["projection"])
        for row in rows:
            gauge.add_metric([row["name"]], row[key])
        yield gauge


def render_metrics(runtime: Runtime) -> bytes:
    """The Prometheus text exposition of the runtime's metrics."""
    registry = CollectorRegistry()
    registry.register(OneCollector(runtime))
    return generate_latest(registry)
