"""The sink's Prometheus metrics, on its own registry (several services may share a test process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class SinkMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.messages_in = Counter(
            "portfolio_messages_in_total", "Messages consumed, by topic", ["topic"], registry=self.registry
        )
        self.documents_written = Counter(
            "portfolio_documents_written_total",
            "Documents inserted or replaced, by collection",
            ["collection"],
            registry=self.registry,
        )
        self.dlq_messages = Counter(
            "portfolio_dlq_messages_total",
            "Messages sent to the dead-letter topic, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.write_batch_seconds = Histogram(
            "portfolio_write_batch_seconds",
            "Time to write one batch to the database, retries included",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "portfolio_consumer_lag",
            "Messages behind the log end on this sink's partitions",
            registry=self.registry,
        )
        self.revisions_ignored = Counter(
            "portfolio_revisions_ignored_total",
            "Bars not written because a newer revision of the same minute was stored or in the same batch",
            registry=self.registry,
        )
        self.write_in_flight_seconds = Gauge(
            "portfolio_write_in_flight_seconds",
            "Age of the batch write now in the database's hands (0 when none): a stuck write shows here",
            registry=self.registry,
        )
        self.write_failures = Counter(
            "portfolio_write_failures_total",
            "Database writes that failed and were retried",
            registry=self.registry,
        )
