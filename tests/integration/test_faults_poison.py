"""Poison of every kind found in the attack on the sink, mixed with good bars: the sink writes every good
bar once, dead-letters every poison once (never over the broker's size limit) and keeps going; a message
that passes validation but that the database refuses is found by splitting the batch."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from services.sink.batch import DecodedBatch
from services.sink.isolation import write_isolating_poison
from services.sink.portfolio import closes_topic, decode_close
from services.sink.repository import SinkRepository
from shared.kafka import ReliableProducer, ensure_topics
from shared.lifecycle import StopFlag
from shared.mongo import BARS, PORTFOLIO, ensure_indexes
from shared.schemas import BarV1, encode
from shared.settings import PORTFOLIO_SERIES
from testkit.bars import bar
from testkit.kafka import headers_of
from testkit.poison import poison as variant
from testkit.stack import own_ferretdb
from testkit.waiting import wait_until
from tests.integration.fault_support import FaultCase, dead_letter_origins, dead_letters, stored_bar_count

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def poison_kinds() -> dict[str, bytes | None]:
    good = bar("AAPL", 0)
    return {
        "two_megabytes": variant(good, source="x" * 2_000_000),
        "volume_2_64": variant(good, volume=2**64),
        "rev_2_63": variant(good, rev=2**63),
        "ts_number": variant(good, ts=1_709_562_600),
        "ts_1970": variant(good, ts="1970-01-01T00:00:00Z"),
        "ts_2300": variant(good, ts="2300-01-01T00:00:00Z"),
        "ts_offset": variant(good, ts="2024-03-04T15:30:00+01:00"),
        "v_true": variant(good, v=True),
        "final_yes": variant(good, final="yes"),
        "volume_string": variant(good, volume="100"),
        "volume_float": variant(good, volume=100.0),
        "price_bool": variant(good, open=True),
        "price_nan": variant(good, close=float("nan")),
        "extra_field": variant(good, note="hi"),
        # The portfolio's reserved name is for predictions only: a bar carrying it is poison.
        "portfolio_bar": variant(good, ticker=PORTFOLIO_SERIES),
        "not_json": b"\xff not json",
        "deeply_nested": b"[" * 50_000,
        "null_value": None,
        "unknown_version": variant(good, v=2),
    }


def test_every_poison_is_dead_lettered_once_and_every_good_bar_written(fault: FaultCase) -> None:
    settings = fault.settings(sink={"batch_max": 20, "batch_ms": 100})
    poison = poison_kinds()
    good: list[BarV1] = []
    messages: list[tuple[str, bytes | None]] = []
    for minute, (name, value) in enumerate(poison.items()):
        for ticker in ("AAPL", "MSFT"):
            good.append(bar(ticker, minute))
            messages.append((ticker, encode(good[-1])))
        messages.append((name, value))
    # The sink reads its internal closes topic too: a malformed record there is poison like any other.
    close = {"v": 1, "ticker": "AAPL", "ts": "2026-11-25T14:31:00Z", "close": 1.0, "rev": 0}
    bad_closes = {
        "close_not_json": b"{",
        "close_extra_field": json.dumps(close | {"note": "hi"}).encode(),
        "close_ts_1970": json.dumps(close | {"ts": "1970-01-01T00:00:00Z"}).encode(),
    }
    ensure_topics(settings, [*settings.kafka.topics(), closes_topic(settings.kafka.bars_topic)])
    # The attacker's client accepts 2 MB; lz4 shrinks it below the broker's limit, as in the attack.
    producer = ReliableProducer(settings, client_id="attacker", config={"message.max.bytes": 3_000_000})
    for key, value in messages:
        producer.produce(settings.kafka.bars_topic, value, key=key)  # type: ignore[arg-type]
    for key, value in bad_closes.items():
        producer.produce(closes_topic(settings.kafka.bars_topic), value, key=key)
    assert producer.flush(30) == 0

    started = time.monotonic()
    with fault.database(settings) as db, fault.service("sink", settings) as sink:
        wait_until(lambda: stored_bar_count(db) >= len(good), 90, "every good bar")
        dead = dead_letters(settings)
        elapsed = time.monotonic() - started
        assert sink.poll() is None, "the sink stopped"
        fault.every_bar_once(db, good)

    by_key = {m.key() or b"": m for m in dead}
    names = [*poison, *bad_closes]
    assert set(by_key) == {name.encode() for name in names} - {b""}, sorted(by_key)
    assert max(dead_letter_origins(dead).values()) == 1, "a poison dead-lettered twice"
    assert len(dead) == len(names)
    for msg in dead:
        assert len(msg.value() or b"") <= 65_536, "a dead letter larger than the broker takes"
    big = headers_of(by_key[b"two_megabytes"])
    assert big["dlq.reason"] == b"too_large" and big["dlq.truncated"].startswith(b"value=2000")
    for name in ("ts_1970", "ts_2300", "ts_number", "v_true", "final_yes", "volume_2_64", "rev_2_63"):
        assert headers_of(by_key[name.encode()])["dlq.reason"] in (b"invalid", b"unknown_version"), name
    fault.report(
        "poison: 18 kinds among 36 good bars, 3 malformed closes",
        "good bars written, each poison dead-lettered once",
        elapsed,
    )


def bars_batch(bars: Sequence[BarV1]) -> DecodedBatch:
    """One partition's worth of bars, as ``decode_batch`` would hand them to the repository."""
    return DecodedBatch(bars=list(bars), bar_partitions={b.ticker: 0 for b in bars})


def test_a_message_the_database_refuses_is_found_by_splitting_the_batch(
    fault: FaultCase, tmp_path: Path
) -> None:
    """Two bars that pass the schema (built unchecked, as a schema gap would let them through): one that
    BSON cannot encode, one with a NaN (FerretDB drops the connection on it; the repository refuses it
    before sending, since an in-progress bar is kept as JSON in ``latest`` where it would pass unseen).
    The other 62 are written, and their closes make the portfolio rows. On a FerretDB of its own."""
    good = [bar(f"T{i % 8}", i // 8) for i in range(62)]
    overflow = BarV1.model_construct(**(bar("BAD1", 0).model_dump() | {"volume": 2**64}))
    nan = BarV1.model_construct(**(bar("BAD2", 0).model_dump() | {"close": float("nan")}))
    batch = [*good[:20], overflow, *good[20:45], nan, *good[45:]]
    with own_ferretdb(tmp_path / "ferretdb") as ferret:
        settings = fault.settings(mongo={"uri": ferret.uri})
        with fault.database(settings) as db:
            ensure_indexes(db)
            closes: list[bytes] = []
            repository = SinkRepository(db, lambda sent: closes.extend(value for _key, value in sent))
            started = time.monotonic()
            outcome = write_isolating_poison(
                batch,
                lambda part: repository.write(bars_batch(part)),
                StopFlag(),
                reachable=lambda: bool(db.command("ping")),
            )
            elapsed = time.monotonic() - started
            assert [item for item, _ in outcome.poison] == [overflow, nan]
            assert isinstance(outcome.poison[0][1], OverflowError)
            # What the closes topic would carry to the rows' owner (here: this one repository).
            repository.write(DecodedBatch(closes=[(0, decode_close(value)) for value in closes]))
            # No sink loop sweeps this repository: settle what it holds as a stopping sink does
            # (settling.settle_on_stop), the bars in progress, then the rows their closes make.
            delivered = len(closes)
            repository.write(DecodedBatch(sweep={BARS: {0}}, settle_all=True))
            late = [(0, decode_close(value)) for value in closes[delivered:]]
            repository.write(DecodedBatch(closes=late, sweep={PORTFOLIO: {0}}, settle_all=True))
            fault.every_bar_once(db, good)
    fault.report(
        "write refused: int > 64 bits, NaN (refused before FerretDB drops the connection)",
        "batch split, 2 poison isolated, 62 written",
        elapsed,
    )
