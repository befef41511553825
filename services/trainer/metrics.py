"""The trainer's Prometheus metrics (served on ``/metrics`` by ``shared.ops``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class TrainerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages_in = Counter("portfolio_messages_in_total", "Bars consumed", registry=registry)
        self.invalid = Counter(
            "portfolio_messages_invalid_total", "Bars rejected (logged)", ["reason"], registry=registry
        )
        self.published = Counter(
            "portfolio_predictions_published_total", "Predictions produced", ["kind"], registry=registry
        )
        self.training = Histogram(
            "portfolio_training_seconds",
            "Time of one training step",
            ["kind"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.cycle = Histogram(
            "portfolio_cycle_seconds",
            "Time of one training cycle (train, scores, checkpoint)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.latency = Histogram(
            "portfolio_prediction_latency_seconds",
            "From a bar's arrival to its prediction's publication",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5),
            registry=registry,
        )
        self.lag = Gauge("portfolio_consumer_lag", "Bars behind the log end", registry=registry)
        self.mse_ratio = Gauge(
            "portfolio_mse_ratio_to_naive",
            "Walk-forward MSE of the model / MSE of the naive forecast, pooled over tickers (<1 beats naive)",
            registry=registry,
        )
        # "Not yet" until something is scored: NaN, never a 0 that would read as a perfect model.
        self.mse_ratio.set(float("nan"))


def observe_many(histogram: Histogram, value: float, count: int) -> None:
    """``count`` observations of ``value`` at once, as ``count`` calls of ``observe(value)`` record.
    A minute's forecasts share one latency, and 2,000 observe calls (a lock and a bucket search each) were
    3% of the polling thread (issue 12). prometheus_client has no weighted observe, so this adds to the
    histogram's own sum and bucket (pinned version; a test compares it with repeated observe calls)."""
    if count <= 0:
        return
    # prometheus_client's own fields: the pinned version, and the test against observe, guard them.
    histogram._raise_if_not_observable()  # type: ignore[no-untyped-call]  # noqa: SLF001
    histogram._sum.inc(value * count)  # noqa: SLF001
    for i, bound in enumerate(histogram._upper_bounds):  # noqa: SLF001
        if value <= bound:
            histogram._buckets[i].inc(count)  # noqa: SLF001
            break
