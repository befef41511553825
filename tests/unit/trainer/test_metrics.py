import pytest
from prometheus_client import CollectorRegistry, Histogram

from services.trainer.metrics import observe_many

BUCKETS = (0.01, 0.1, 1.0)


def samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    (metric,) = histogram.collect()
    return {
        (s.name, s.labels.get("le", "")): s.value for s in metric.samples if not s.name.endswith("_created")
    }


def test_observe_many_records_what_repeated_observes_record() -> None:
    once = Histogram("once", "", buckets=BUCKETS, registry=CollectorRegistry())
    many = Histogram("many", "", buckets=BUCKETS, registry=CollectorRegistry())
    for value, count in [(0.005, 3), (0.05, 2000), (0.1, 1), (5.0, 7), (0.5, 0)]:
        for _ in range(count):
            once.observe(value)
        observe_many(many, value, count)
    got = {(name.replace("many", "once"), le): v for (name, le), v in samples(many).items()}
    expected = samples(once)
    # The sum once multiplied, not added 2,000 times: equal up to rounding.
    assert got.pop(("once_sum", "")) == pytest.approx(expected.pop(("once_sum", "")), rel=1e-12)
    assert got == expected
    assert samples(once)[("once_count", "")] == 2011
