"""The trainer's prediction encoder: the same bytes as the validated path for every forecast, valid or
not (or the same error), and every message it writes decodes."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

from services.trainer.forecaster.records import Forecast
from services.trainer.messages import PredictionEncoder, prediction_message
from services.trainer.model.series import to_minute
from services.trainer.model.windows import Target
from shared.schemas import decode_prediction, encode

NOW = datetime.now(UTC)
BASED_ON = to_minute(datetime(2026, 1, 5, 15, 0, tzinfo=UTC))
TRAINED = datetime(2026, 1, 5, 14, 59, 30, 123456, tzinfo=UTC)

# Floats at and around every boundary the encoder reasons about, and ordinary prices.
EDGE_FLOATS: list[Any] = [
    1e-4, math.nextafter(1e-4, 0), math.nextafter(1e-4, 1), 1e-5, 5e-324, 0.0, -0.0, -1.0,
    1e15, math.nextafter(1e15, 0), 1e16, 1.7976931348623157e308, math.inf, -math.inf, math.nan,
    0.1, 0.30000000000000004, 1.0, 187.25, 99999.99, 123456789012345.6,
    np.float64(187.25), np.float64(3e-5), np.float32(1.5), 187, True, "187.25", None,
]  # fmt: skip
EDGE_TICKERS: list[Any] = [
    "AAPL", "BRK-B", "^GSPC", "EURUSD=X", "A" * 15, "A" * 16, "aapl", "_PORTFOLIO", "AAPL\n", "", "ÄAPL", 42,
]  # fmt: skip
EDGE_VERSIONS: list[Any] = [
    "lstm-4x50@2026-01-05", "naive", "a", "x" * 128, "x" * 129, 'q"uote', "back\\slash", "with space", "",
    "é", "tab\t", "~!#$%&'()*+,-./:;<=>?@[]^_`{|}", None,
]  # fmt: skip
EDGE_TRAINED: list[Any] = [
    TRAINED, TRAINED.replace(tzinfo=None), TRAINED.astimezone(timezone(timedelta(hours=-5))),
    datetime(1989, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(1990, 1, 1, tzinfo=UTC),
    NOW + timedelta(hours=23), NOW + timedelta(days=2), "2026-01-05T14:59:00Z",
]  # fmt: skip
EDGE_HORIZONS = [1, 5, 15, 30, 0, -1, 10_080, 10_081]
EDGE_BASED_ON: list[Any] = [
    BASED_ON, to_minute(datetime(1990, 1, 1, tzinfo=UTC)),
    to_minute(datetime(1989, 12, 31, 23, 59, tzinfo=UTC)),
    to_minute(NOW + timedelta(hours=23)), to_minute(NOW + timedelta(days=1)), np.int64(BASED_ON),
]  # fmt: skip


def outcome(make: Callable[[Forecast], bytes], fc: Forecast) -> bytes | tuple[type[BaseException], str]:
    try:
        return make(fc)
    except Exception as exc:  # the error itself is what is compared
        return type(exc), str(exc)


def same_as_validated(forecasts: list[Forecast], target: Target) -> int:
    """Assert equal outcomes; return how many forecasts took the fast path."""
    encoder = PredictionEncoder(target)
    fast = 0
    for fc in forecasts:
        expected = outcome(lambda f: encode(prediction_message(f, target)), fc)
        got = outcome(encoder.encode, fc)
        assert got == expected, fc
        if isinstance(got, bytes):
            decode_prediction(got)
        fast += encoder._fast(fc) is not None
    return fast


def realistic(rng: random.Random) -> Forecast:
    """A forecast as the trainer makes them, prices spread over twenty orders of magnitude."""
    close = (
        10 ** rng.uniform(-6, 17)
        if rng.random() < 0.3
        else round(rng.uniform(1, 2000), rng.choice([2, 4, 17]))
    )
    h = rng.choice([1, 5, 15, 30])
    q = None if rng.random() < 0.3 else sorted(close * (1 + rng.gauss(0, 0.01)) for _ in range(2))
    as_np = rng.random() < 0.5
    yhat = np.float64(close) if as_np else close
    version = rng.choice(["lstm-4x50@2026-01-05T14:59:30Z", "naive-last-close", "m1"])
    based_on = BASED_ON + rng.randrange(-(10**6), 600)
    trained = TRAINED - timedelta(seconds=rng.randrange(10**8))
    ticker = rng.choice(["AAPL", "MSFT", "BRK-B", "^VIX"])
    return Forecast(ticker, based_on, based_on + h, yhat, close, version, trained, None, *(q or (None, None)))


def edge(rng: random.Random) -> Forecast:
    """A realistic forecast with each field swapped, one time in four, for one of its boundary cases."""
    fc = realistic(rng)

    def pick(cases: list[Any], value: Any) -> Any:
        return rng.choice(cases) if rng.random() < 0.25 else value

    based_on, h = pick(EDGE_BASED_ON, fc.based_on), pick(EDGE_HORIZONS, fc.minute - fc.based_on)
    q10, q90 = pick(EDGE_FLOATS, fc.q10), pick(EDGE_FLOATS, fc.q90)
    return Forecast(
        pick(EDGE_TICKERS, fc.ticker),
        based_on,
        based_on + h,
        pick(EDGE_FLOATS, fc.yhat),
        1.0,
        pick(EDGE_VERSIONS, fc.model_version),
        pick(EDGE_TRAINED, fc.trained_at),
        None,
        q10,
        q90,
    )


@pytest.mark.parametrize("target", ["return", "price"])
def test_realistic_forecasts_encode_as_the_validated_path_does(target: Target) -> None:
    rng = random.Random(18)
    forecasts = [realistic(rng) for _ in range(4000)]
    fast = same_as_validated(forecasts, target)
    in_range = sum(1e-4 <= fc.yhat < 1e15 for fc in forecasts)
    assert fast >= 0.9 * in_range  # the fast path is what runs, not the fallback


@pytest.mark.parametrize("target", ["return", "price"])
def test_edge_case_forecasts_give_the_same_bytes_or_the_same_error(target: Target) -> None:
    rng = random.Random(1818)
    forecasts = [edge(rng) for _ in range(6000)]
    assert same_as_validated(forecasts, target) > 1000  # boundary values that are valid take the fast path


@pytest.mark.parametrize("target", ["return", "price"])
def test_a_bars_horizons_sharing_its_objects_give_the_same_bytes_or_the_same_error(target: Target) -> None:
    """The forecasts of a bar's horizons hold the very same ticker, minute, yhat and version objects
    (``with_horizons``): the encoder reuses their text for those objects only."""
    rng = random.Random(181818)
    forecasts = []
    for _ in range(1500):
        fc = edge(rng)
        for h in rng.sample(EDGE_HORIZONS, 4):
            q10, q90 = (rng.choice(EDGE_FLOATS) for _ in range(2)) if rng.random() < 0.2 else (fc.q10, fc.q90)
            fc = fc._replace(minute=fc.based_on + h, q10=q10, q90=q90)
            if rng.random() < 0.2:  # one of the shared fields changes, the others are the same objects
                field, cases = rng.choice(
                    [("ticker", EDGE_TICKERS), ("yhat", EDGE_FLOATS), ("model_version", EDGE_VERSIONS),
                     ("trained_at", EDGE_TRAINED)]
                )  # fmt: skip
                fc = fc._replace(**{field: rng.choice(cases)})
            elif rng.random() < 0.1:
                based_on = rng.choice(EDGE_BASED_ON)
                fc = fc._replace(based_on=based_on, minute=based_on + h)
            forecasts.append(fc)
    assert same_as_validated(forecasts, target) > 500  # most with the text of the bar before


def test_every_boundary_float_as_each_price_field() -> None:
    base = Forecast("AAPL", BASED_ON, BASED_ON + 5, 187.25, 187.0, "m1", TRAINED, None, 180.0, 190.0)
    forecasts = []
    x: Any
    for x in EDGE_FLOATS:
        forecasts += [
            base._replace(yhat=x),
            base._replace(q10=x),
            base._replace(q90=x),
            base._replace(q10=x, q90=x),
        ]
    forecasts += [base._replace(q10=None), base._replace(q90=None), base._replace(q10=None, q90=None)]
    same_as_validated(forecasts, "return")


def test_a_target_outside_the_schema_is_refused_as_before() -> None:
    fc = Forecast("AAPL", BASED_ON, BASED_ON + 1, 187.25, 187.0, "m1", TRAINED)
    assert PredictionEncoder("bogus")._fast(fc) is None  # type: ignore[arg-type]
    same_as_validated([fc], "bogus")  # type: ignore[arg-type]
