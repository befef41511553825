"""The producer's Prometheus metrics, in a registry of its own (served on /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ProducerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.bars_published = Counter(
            "portfolio_producer_bars_published",
            "Bars handed to Kafka (new and revised)",
            ["source"],
            registry=r,
        )
        self.revisions = Counter(
            "portfolio_producer_revisions", "Bars republished with a higher rev", ["source"], registry=r
        )
        self.bars_delivered = Counter(
            "portfolio_producer_bars_delivered", "Bars the brokers confirmed", registry=r
        )
        self.invalid_rows = Counter(
            "portfolio_producer_invalid_rows", "Rows skipped by validation", ["reason"], registry=r
        )
        self.fetch_errors = Counter(
            "portfolio_producer_fetch_errors",
            "Fetches or tickers that failed (kind: rate_limit, network, source, timeout, ticker)",
            ["kind"],
            registry=r,
        )
        self.delivery_failures = Counter(
            "portfolio_producer_delivery_failures",
            "Delivery reports with an error (each is produced again)",
            registry=r,
        )
        self.cycle_seconds = Histogram(
            "portfolio_producer_cycle_seconds",
            "Duration of one cycle's own work (validate, detect revisions, encode, produce), fetch excluded",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.fetch_seconds = Histogram(
            "portfolio_producer_fetch_seconds",
            "Duration of one fetch from the source",
            buckets=(0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.pending = Gauge(
            "portfolio_producer_pending_messages", "Produced but not yet confirmed", registry=r
        )
        self.last_cycle = Gauge(
            "portfolio_producer_last_cycle_timestamp_seconds",
            "Unix time of the last successful cycle",
            registry=r,
        )
