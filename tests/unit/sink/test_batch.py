from __future__ import annotations

import json
from dataclasses import dataclass

from services.sink.batch import DecodedBatch, decode_batch
from services.sink.dlq import dlq_headers, dlq_value
from shared.schemas import encode
from testkit.bars import bar


@dataclass
class Record:
    _topic: str
    _value: bytes | None
    _key: bytes | None = b"AAPL"
    _partition: int = 3
    _offset: int = 42

    def topic(self) -> str | None:
        return self._topic

    def partition(self) -> int | None:
        return self._partition

    def offset(self) -> int | None:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value


def decode(*records: Record) -> DecodedBatch:
    return decode_batch(records, bars_topic="bars", predictions_topic="preds", max_bytes=1_000)


def test_good_bars_pass_and_each_bad_message_becomes_poison_with_its_reason() -> None:
    good = bar("AAPL", 0).model_dump(mode="json")
    batch = decode(
        Record("bars", encode(bar("AAPL", 0))),
        Record("bars", b"nope"),
        Record("bars", json.dumps(good | {"v": 9}).encode()),
        Record("bars", json.dumps(good | {"low": 500.0}).encode()),
        Record("bars", json.dumps(good | {"source": "x" * 2_000}).encode()),
        Record("bars", None),
        Record("preds", encode(bar("AAPL", 1))),
        Record("other", encode(bar("AAPL", 1))),
    )
    assert [b.ticker for b in batch.bars] == ["AAPL"]
    reasons = [p.reason for p in batch.poison]
    assert reasons == [
        "not_json",
        "unknown_version",
        "invalid",
        "too_large",
        "not_json",
        "invalid",
        "unknown_topic",
    ]


def test_dead_letter_keeps_the_original_bytes_and_names_reason_topic_partition_offset() -> None:
    batch = decode(Record("bars", b"\xff garbage", _key=b"K", _partition=5, _offset=7))
    poison = batch.poison[0]
    headers = dict(dlq_headers(poison))
    assert dlq_value(poison) == b"\xff garbage"
    assert poison.key == b"K"
    assert headers["dlq.reason"] == b"not_json"
    assert headers["dlq.topic"] == b"bars"
    assert (headers["dlq.partition"], headers["dlq.offset"]) == (b"5", b"7")
    assert headers["dlq.detail"]


def test_dead_letter_detail_is_capped() -> None:
    batch = decode(Record("bars", b"[" * 900))
    assert len(dict(dlq_headers(batch.poison[0]))["dlq.detail"] or b"") <= 1_000
