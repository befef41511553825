"""Encoding a poll's prediction messages, in process (issue 18).

    python -m bench.bench_publish

2,000 forecasts (500 tickers x horizons 1, 5, 15, 30, with ranges; numpy-float quantiles, as the
forecaster makes them) encoded the validated way (a PredictionV1 per forecast, then dumped) and with
:class:`PredictionEncoder` (one per poll, as ``TrainerLoop.publish`` builds it), alternated in one run so
both see the same load: the median milliseconds of ``rounds`` rounds each. The bytes are checked equal.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

import numpy as np

from services.trainer.forecaster.records import Forecast
from services.trainer.messages import PredictionEncoder, prediction_message
from services.trainer.model.series import to_minute
from shared.schemas import encode

BASED_ON = to_minute(datetime(2026, 1, 5, 15, 0, tzinfo=UTC))
TRAINED = datetime(2026, 1, 5, 14, 58, 12, 345678, tzinfo=UTC)
VERSION = "lstm-4x50@2026-01-05T14:58:12Z"


def forecasts(tickers: int = 500, horizons: tuple[int, ...] = (1, 5, 15, 30)) -> list[Forecast]:
    rng = np.random.default_rng(0)
    closes = 100 * np.exp(rng.standard_normal(tickers))
    out = []
    for j, close in enumerate(closes.tolist()):
        ticker = f"T{j}"
        yhat = close * (1 + 1e-4 * rng.standard_normal())
        for h in horizons:
            width = 1e-3 * close * h**0.5
            low, high = np.float64(yhat - width), np.float64(yhat + width)
            fc = Forecast(ticker, BASED_ON, BASED_ON + h, yhat, close, VERSION, TRAINED, None, low, high)
            out.append(fc)
    return out


def validated(batch: list[Forecast]) -> list[bytes]:
    return [encode(prediction_message(fc, "return")) for fc in batch]


def fast(batch: list[Forecast]) -> list[bytes]:
    encoder = PredictionEncoder("return")
    return [encoder.encode(fc) for fc in batch]


def main(rounds: int = 30) -> None:
    batch = forecasts()
    assert validated(batch) == fast(batch)
    times: dict[str, list[float]] = {"validated": [], "encoder": []}
    for _ in range(rounds):
        for name, run in (("validated", validated), ("encoder", fast)):
            started = time.perf_counter()
            run(batch)
            times[name].append(time.perf_counter() - started)
    for name, values in times.items():
        ms = statistics.median(values) * 1e3
        print(f"{name:>9}: {ms:6.2f} ms for {len(batch)} messages ({ms * 1e3 / len(batch):.2f} us each)")


if __name__ == "__main__":
    main()
