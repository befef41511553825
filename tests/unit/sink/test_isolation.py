"""Batch bisection and error classification, as pure units (the real database is in the fault suite)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from bson.errors import InvalidDocument
from confluent_kafka import KafkaError
from pymongo.errors import AutoReconnect, BulkWriteError, NetworkTimeout, OperationFailure

from services.sink.isolation import Stopped, write_isolating_poison
from shared.kafka import authentication_error
from shared.lifecycle import StopFlag
from shared.mongo import ErrorKind, classify_error
from shared.retry import Backoff


class Store:
    """Writes integers; refuses (with ``error``) any batch holding a bad one, like a database would."""

    def __init__(self, bad: set[int], error: Exception) -> None:
        self.bad, self.error = bad, error
        self.written: list[int] = []
        self.calls = 0

    def write(self, batch: Sequence[int]) -> int:
        self.calls += 1
        if self.bad & set(batch):
            raise self.error
        self.written += batch
        return len(batch)


@pytest.mark.parametrize(
    "error",
    [
        OverflowError("MongoDB can only handle up to 8-byte ints"),
        InvalidDocument("cannot encode object"),
        BulkWriteError({"writeErrors": [{"index": 0, "code": 2, "errmsg": "bad value"}]}),
    ],
)
def test_the_bad_messages_are_isolated_and_every_other_one_written_in_order(error: Exception) -> None:
    store = Store(bad={3, 40, 41}, error=error)
    outcome = write_isolating_poison(list(range(64)), store.write, StopFlag())
    assert [item for item, _ in outcome.poison] == [3, 40, 41]
    assert store.written == [i for i in range(64) if i not in {3, 40, 41}]
    assert sum(outcome.results) == 61
    assert store.calls < 64, "bisection, not one write per message"


def test_an_outage_is_retried_whole_never_split() -> None:
    store = Store(bad=set(), error=AutoReconnect("down"))
    failures = iter([AutoReconnect("down"), NetworkTimeout("slow")])

    def flaky(batch: Sequence[int]) -> int:
        error = next(failures, None)
        if error:
            raise error
        return store.write(batch)

    outages: list[Exception] = []
    outcome = write_isolating_poison(
        list(range(10)), flaky, StopFlag(), on_outage=outages.append, backoff=Backoff(base=0.001, cap=0.002)
    )
    assert store.written == list(range(10)) and not outcome.poison and len(outages) == 2


def test_a_connection_dropped_while_the_server_answers_is_taken_for_poison() -> None:
    """FerretDB closes the connection on some documents instead of answering with an error."""
    store = Store(bad={5}, error=AutoReconnect("connection closed"))
    outcome = write_isolating_poison(list(range(8)), store.write, StopFlag(), reachable=lambda: True)
    assert [item for item, _ in outcome.poison] == [5]
    assert store.written == [0, 1, 2, 3, 4, 6, 7]


def test_a_stop_during_an_outage_gives_up_the_batch_unwritten() -> None:
    stop = StopFlag()
    threading.Timer(0.05, stop.set).start()
    with pytest.raises(Stopped):
        write_isolating_poison([1, 2], Store(bad={1}, error=AutoReconnect("down")).write, stop)


def test_a_bug_is_not_mistaken_for_poison() -> None:
    with pytest.raises(TypeError):
        write_isolating_poison([1, 2], Store(bad={1}, error=TypeError("bug")).write, StopFlag())


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (OperationFailure("Authentication failed.", code=18), ErrorKind.AUTH),
        (OperationFailure("not authorized", code=13), ErrorKind.AUTH),
        (OperationFailure("interrupted at shutdown", code=11600), ErrorKind.OUTAGE),
        (NetworkTimeout("timed out"), ErrorKind.OUTAGE),
        (BulkWriteError({"writeErrors": [], "writeConcernErrors": [{"code": 64}]}), ErrorKind.OUTAGE),
        (BulkWriteError({"writeErrors": [{"index": 0, "code": 91}]}), ErrorKind.OUTAGE),
        (OverflowError("8-byte ints"), ErrorKind.DOCUMENT),
        (ValueError("a bug"), ErrorKind.OTHER),
    ],
)
def test_database_errors_are_classified(error: Exception, kind: ErrorKind) -> None:
    assert classify_error(error) is kind


def test_a_refused_kafka_login_names_the_settings() -> None:
    refused = authentication_error(KafkaError(KafkaError.SASL_AUTHENTICATION_FAILED, "bad password"))
    assert refused is not None and "PORTFOLIO_KAFKA_SASL_PASSWORD" in str(refused)
    assert "authentication" in str(refused)
    assert authentication_error(KafkaError(KafkaError._TRANSPORT, "down")) is None
