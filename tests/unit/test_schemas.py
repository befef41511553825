from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.schemas import BarV1, MessageError, PredictionV1, decode_bar, decode_prediction, encode
from shared.settings import PORTFOLIO_SERIES
from testkit.bars import bar_message as bar
from testkit.bars import prediction_message as prediction
from testkit.poison import poison, without

TS = datetime(2026, 11, 25, 14, 31, tzinfo=UTC)


def test_bar_round_trips_in_the_documented_shape() -> None:
    original = BarV1.model_validate(bar())
    wire = encode(original)
    assert json.loads(wire) == bar()
    assert decode_bar(wire) == original


def test_timestamps_are_written_in_utc_with_z() -> None:
    eastern = timezone(timedelta(hours=-5))
    message = BarV1.model_validate(bar(ts=datetime(2026, 11, 25, 9, 31, tzinfo=eastern)))
    assert json.loads(encode(message))["ts"] == "2026-11-25T14:31:00Z"
    assert message.ts == TS


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not_json"),
        (b"\xff\xfe", "not_json"),
        (None, "not_json"),
        (b"[1, 2]", "invalid"),
        (poison(bar(), v=2), "unknown_version"),
        (without(bar(), "v"), "unknown_version"),
        (without(bar(), "close"), "invalid"),
        (poison(bar(), close="high"), "invalid"),
        (
            (
                b'{"v":1,"ticker":"AAPL","ts":"2026-11-25T14:31:00Z","open":NaN,"high":1,"low":1,"close":1,'
                b'"volume":1,"source":"s"}'
            ),
            "invalid",
        ),
        (
            (
                b'{"v":1,"ticker":"AAPL","ts":"2026-11-25T14:31:00Z","open":1,"high":Infinity,"low":1,"close":1,'
                b'"volume":1,"source":"s"}'
            ),
            "invalid",
        ),
        (poison(bar(), low=-1.0), "invalid"),
        (poison(bar(), low=102.0), "invalid"),
        (poison(bar(), close=105.0), "invalid"),
        (poison(bar(), volume=-1), "invalid"),
        (poison(bar(), ts="2026-11-25T14:31:17Z"), "invalid"),
        (poison(bar(), ts="2026-11-25T14:31:00"), "invalid"),
        (poison(bar(), ticker="BRK.B"), "invalid"),
        (poison(bar(), surprise=1), "invalid"),
        (poison(bar(), source="x" * 5000), "too_large"),
    ],
)
def test_bad_bars_are_rejected_with_a_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(MessageError) as error:
        decode_bar(raw, max_bytes=4096)
    assert error.value.reason == reason


def test_prediction_round_trips_in_the_documented_shape() -> None:
    original = PredictionV1.model_validate(prediction())
    assert json.loads(encode(original)) == prediction()
    assert decode_prediction(encode(original)) == original


def test_only_a_prediction_may_carry_the_portfolios_reserved_name() -> None:
    portfolio = decode_prediction(poison(prediction(), ticker=PORTFOLIO_SERIES))
    assert portfolio.ticker == PORTFOLIO_SERIES
    with pytest.raises(MessageError) as error:
        decode_bar(poison(bar(), ticker=PORTFOLIO_SERIES))
    assert error.value.reason == "invalid"  # a bar carrying it is poison: the sink dead-letters it
    for near in ("_PORTFOLIO2", "_portfolio", "PORTFOLIO_", "_AAPL"):
        with pytest.raises(MessageError):
            decode_prediction(poison(prediction(), ticker=near))


def test_prediction_interval_is_optional_and_round_trips() -> None:
    with_interval = PredictionV1.model_validate(prediction(q10=100.5, q90=100.9))
    assert json.loads(encode(with_interval)) == prediction(q10=100.5, q90=100.9)
    assert decode_prediction(encode(with_interval)) == with_interval
    # A message from before the interval existed still decodes, and one without it encodes as before.
    old = decode_prediction(json.dumps(prediction()).encode())
    assert old.q10 is None and old.q90 is None
    assert "q10" not in json.loads(encode(old))
    assert PredictionV1.model_validate(prediction(q10=100.7, q90=100.7)).q10 == 100.7


@pytest.mark.parametrize(
    "overrides",
    [
        {"ts": "2026-11-25T14:31:00Z"},
        {"ts": "2026-11-25T14:30:00Z"},
        {"horizon_min": 2},
        {"yhat": 0},
        {"target": "level"},
        {"model_version": ""},
        {"q10": 100.9, "q90": 100.5},
        {"q10": 100.5},
        {"q90": 100.9},
        {"q10": 0, "q90": 100.9},
        {"q10": -1.0, "q90": 100.9},
        {"q10": "NaN", "q90": 100.9},
        {"q10": 100.5, "q90": "Infinity"},
    ],
)
def test_bad_predictions_are_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(MessageError):
        decode_prediction(json.dumps(prediction(**overrides)).encode())


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"v": True}, "unknown_version"),
        ({"v": 1.0}, "unknown_version"),
        ({"final": "yes"}, "invalid"),
        ({"final": 1}, "invalid"),
        ({"volume": "100"}, "invalid"),
        ({"volume": 100.0}, "invalid"),
        ({"volume": True}, "invalid"),
        ({"open": True}, "invalid"),
        ({"close": "100.5"}, "invalid"),
        ({"rev": "3"}, "invalid"),
        ({"ticker": 7}, "invalid"),
        ({"volume": 2**63}, "invalid"),
        ({"volume": 2**64}, "invalid"),
        ({"rev": 2**63}, "invalid"),
        ({"ts": 1_764_081_060}, "invalid"),
        ({"ts": 1_764_081_060_000}, "invalid"),
        ({"ts": "1970-01-01T00:00:00Z"}, "invalid"),
        ({"ts": "1989-12-31T23:59:00Z"}, "invalid"),
        ({"ts": "2300-01-01T00:00:00Z"}, "invalid"),
        ({"ts": "2026-11-25T15:31:00+01:00"}, "invalid"),
        ({"ts": "2026-11-25 14:31:00Z"}, "invalid"),
        ({"ts": "2026-11-25"}, "invalid"),
        ({"ts": {"$date": "2026-11-25T14:31:00Z"}}, "invalid"),
        ({"source": "two words"}, "invalid"),
        ({"source": ""}, "invalid"),
    ],
)
def test_nothing_is_coerced_and_values_stay_within_what_the_database_stores(
    overrides: dict[str, object], reason: str
) -> None:
    with pytest.raises(MessageError) as error:
        decode_bar(poison(bar(), **overrides))
    assert error.value.reason == reason


def test_the_largest_64_bit_values_and_a_zero_offset_are_accepted() -> None:
    message = decode_bar(
        json.dumps(bar(volume=2**63 - 1, rev=2**63 - 1, ts="2026-11-25T14:31:00+00:00")).encode()
    )
    assert message.volume == 2**63 - 1 and message.ts == TS


def test_a_bar_a_day_ahead_is_accepted_and_beyond_it_refused() -> None:
    soon = (datetime.now(UTC) + timedelta(hours=23)).replace(second=0, microsecond=0)
    later = soon + timedelta(hours=2)
    assert decode_bar(json.dumps(bar(ts=soon.strftime("%Y-%m-%dT%H:%M:%SZ"))).encode()).ts == soon
    with pytest.raises(MessageError):
        decode_bar(poison(bar(), ts=later.strftime("%Y-%m-%dT%H:%M:%SZ")))


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"a":' * 50_000])
def test_deeply_nested_json_is_poison_not_a_crash(raw: bytes) -> None:
    with pytest.raises(MessageError) as error:
        decode_bar(raw)
    assert error.value.reason == "not_json"


@pytest.mark.parametrize(
    "overrides",
    [
        {"trained_at": "1970-01-01T00:00:00Z"},
        {"horizon_min": True},
        {"yhat": "100.7"},
        {"horizon_min": 10**6},
    ],
)
def test_predictions_are_decoded_strictly_too(overrides: dict[str, object]) -> None:
    with pytest.raises(MessageError):
        decode_prediction(json.dumps(prediction(**overrides)).encode())
