"""The sink against the real broker and FerretDB: revisions, the outer merge, predictions, the DLQ."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.scoring.stored import load_closes
from shared.layout import open_items, portfolio_rows
from shared.mongo import BARS, PREDICTIONS, database, make_client
from shared.schemas import BarV1, encode
from shared.settings import Settings
from testkit.bars import T0, bar, prediction
from testkit.kafka import consume, headers_of
from testkit.poison import poison, without
from testkit.services import log_text, service_process
from testkit.waiting import wait_until
from tests.integration.sink_support import bar_messages, produce

pytestmark = pytest.mark.integration


def final(b: BarV1) -> BarV1:
    return b.model_copy(update={"final": True})


def rows_of(db: Any) -> dict[Any, dict[str, float]]:
    return {row["ts"]: row["close"] for row in portfolio_rows(db, T0, T0 + timedelta(days=1))}


def stored_predictions(db: Any) -> list[dict[str, Any]]:
    return list(db[PREDICTIONS].find({}, {"_id": 0})) + list(open_items(db, PREDICTIONS))


def test_latest_revision_wins_stale_is_ignored_and_the_portfolio_is_an_outer_merge(
    settings_factory: Any, tmp_path: Path
) -> None:
    # A revision of a stored bar is merged within the settle bound: a short one keeps the test short.
    settings = settings_factory(sink={"settle_s": 20.0})
    bars = [
        bar("AAPL", 0, rev=0),
        bar("AAPL", 0, rev=2),  # final
        bar("AAPL", 0, rev=1),  # stale: arrives after rev 2 in the same stream
        bar("AAPL", 0, rev=2),  # duplicate
        final(bar("MSFT", 0, rev=0)),
        final(bar("AAPL", 1, rev=0)),  # MSFT has no bar at minute 1
        final(bar("MSFT", 2, rev=0)),
    ]
    in_progress = [bar("IBM", 3, rev=0), bar("IBM", 3, rev=1)]  # sent last, looked at before they settle
    produce(settings, bar_messages(bars))
    log_file = tmp_path / "sink.log"
    with make_client(settings) as client, service_process("sink", settings, log_file):
        db = database(client, settings)
        # Rows fill in `latest` while their minute is recent; readers get them through one helper.
        wait_until(lambda: len(rows_of(db)) == 3, 60, "three portfolio rows")
        # A stale revision sent later, in its own batch, must not overwrite the stored rev 2; a revision
        # after final (MSFT minute 2) is still applied.
        time.sleep(1)
        produce(settings, bar_messages([bar("AAPL", 0, rev=1, close=1.5), bar("MSFT", 2, rev=1, close=77.0)]))
        wait_until(lambda: db[BARS].find_one({"ticker": "MSFT", "rev": 1}), 30, "MSFT rev 1")
        wait_until(lambda: "revisions_ignored=1" in log_text(log_file), 10, "the stale bar to be ignored")
        wait_until(
            lambda: rows_of(db)[T0 + timedelta(minutes=2)].get("MSFT") == 77.0,
            30,
            "the late revision in the portfolio",
        )

        stored = {(d["ticker"], d["ts"]): d for d in db[BARS].find({}, {"_id": 0})}
        assert len(stored) == 4
        aapl = stored[("AAPL", T0)]
        assert aapl["rev"] == 2 and aapl["close"] == bar("AAPL", 0, rev=2).close
        assert aapl["final"] is True and aapl["ingested_at"].tzinfo is not None
        assert set(aapl) == {
            "ticker", "ts", "open", "high", "low", "close", "volume", "source", "rev", "final", "ingested_at"
        }  # fmt: skip
        assert stored[("MSFT", T0 + timedelta(minutes=2))]["close"] == 77.0

        rows = rows_of(db)
        assert rows == {
            T0: {"AAPL": bar("AAPL", 0, rev=2).close, "MSFT": bar("MSFT", 0).close},
            T0 + timedelta(minutes=1): {"AAPL": bar("AAPL", 1).close},
            T0 + timedelta(minutes=2): {"MSFT": 77.0},
        }

        # In progress: held in ``bars_open``, not in history nor in the portfolio (until it settles).
        produce(settings, bar_messages(in_progress))
        wait_until(
            lambda: (
                [(d["rev"], d["close"]) for d in open_items(db, BARS) if d["ticker"] == "IBM"]
                == [(1, bar("IBM", 3, rev=1).close)]
            ),
            30,
            "IBM in progress",
        )
        assert db[BARS].find_one({"ticker": "IBM"}) is None
        closes = load_closes(db, None, T0, T0 + timedelta(minutes=5))
        assert len(closes) == 5 and closes["ticker"].tolist().count("IBM") == 1


def test_every_kind_of_poison_lands_in_the_dlq_while_good_bars_around_it_are_written(
    integration_settings: Settings, tmp_path: Path
) -> None:
    settings = integration_settings
    good = bar("AAPL", 0)
    poisons = {
        "not_json": b"{not json",
        "unknown_version": poison(good, v=2),
        "missing_field": without(good, "close"),
        "wrong_type": poison(good, volume="many"),
        "nan_price": poison(good, close=float("nan")),
        "infinite_price": poison(good, high=float("inf")),
        "negative_price": poison(good, low=-1.0),
        "low_above_high": poison(good, low=200.0, high=150.0),
        "ts_not_on_minute": poison(good, ts="2024-03-04T14:30:17Z"),
        "too_large": poison(good, source="x" * 20_000),
    }
    expected_reason = dict.fromkeys(poisons, "invalid") | {
        "not_json": "not_json",
        "unknown_version": "unknown_version",
        "too_large": "too_large",
    }
    messages: list[tuple[str | None, bytes]] = []
    for minute, (name, value) in enumerate(poisons.items()):
        messages.append(("AAPL", encode(final(bar("AAPL", minute)))))
        messages.append((name, value))
    messages.append(("AAPL", encode(final(bar("AAPL", len(poisons))))))
    produce(settings, messages)

    first = prediction("AAPL", yhat=101.5, model_version="lstm-1")
    newer = first.model_copy(update={"yhat": 102.0, "trained_at": T0 + timedelta(minutes=5)})
    older = first.model_copy(update={"yhat": 99.0})
    produce(
        settings,
        [("AAPL", encode(first)), ("AAPL", encode(newer)), ("AAPL", encode(older)), ("AAPL", b"[]")],
        topic=settings.kafka.predictions_topic,
    )

    with make_client(settings) as client, service_process("sink", settings, tmp_path / "sink.log"):
        db = database(client, settings)
        dead = consume(
            settings,
            settings.kafka.dlq_topic,
            len(poisons) + 1,
            f"{settings.kafka.dlq_topic}-reader",
            60,
            "test-dlq",
        )
        wait_until(lambda: db[BARS].count_documents({}) == len(poisons) + 1, 30, "every good bar")
        # The only prediction for its ticker stays in progress (in `latest`) until a later minute's comes.
        wait_until(lambda: len(stored_predictions(db)) == 1, 30, "the prediction")

        by_key = {m.key() or b"": m for m in dead}
        assert len(dead) == len(poisons) + 1
        for name, value in poisons.items():
            msg = by_key[name.encode()]
            headers = headers_of(msg)
            assert msg.value() == value, name
            assert headers["dlq.reason"].decode() == expected_reason[name], name
            assert headers["dlq.topic"].decode() == settings.kafka.bars_topic
            assert int(headers["dlq.offset"]) >= 0 and int(headers["dlq.partition"]) >= 0
            assert headers["dlq.detail"]
        assert headers_of(by_key[b"AAPL"])["dlq.topic"].decode() == settings.kafka.predictions_topic

        [stored] = stored_predictions(db)
        assert stored["yhat"] == 102.0 and stored["trained_at"] == newer.trained_at
        assert stored["ts"] == T0 + timedelta(minutes=1) and stored["based_on_ts"] == T0
        assert {"horizon_min", "model_version", "target"} <= set(stored)

        # The next target minute's prediction settles it into history.
        later = newer.model_copy(
            update={"ts": T0 + timedelta(minutes=5), "based_on_ts": T0 + timedelta(minutes=4)}
        )
        produce(settings, [("AAPL", encode(later))], topic=settings.kafka.predictions_topic)
        wait_until(lambda: db[PREDICTIONS].count_documents({}) == 1, 30, "the prediction in history")
        settled = db[PREDICTIONS].find_one({})
        assert settled is not None and settled["yhat"] == 102.0 and "ingested_at" in settled
