"""The trainer's side of the wire: a bar message into what the forecaster takes, a forecast into the
prediction message it publishes. No I/O."""

from __future__ import annotations

from services.trainer.forecaster.records import BarIn, Forecast
from services.trainer.model.series import from_minute, to_minute
from services.trainer.model.windows import Target
from shared.schemas import BarV1, PredictionV1


def prediction_message(forecast: Forecast, target: Target) -> PredictionV1:
    return PredictionV1(
        ticker=forecast.ticker,
        ts=from_minute(forecast.minute),
        yhat=forecast.yhat,
        horizon_min=forecast.minute - forecast.based_on,
        based_on_ts=from_minute(forecast.based_on),
        model_version=forecast.model_version,
        trained_at=forecast.trained_at,
        target=target,
        q10=forecast.q10,
        q90=forecast.q90,
    )


def bar_in(bar: BarV1) -> BarIn:
    return BarIn(bar.ticker, to_minute(bar.ts), bar.close, bar.rev, bar.final, bar.open, bar.high, bar.low,
                 bar.volume)  # fmt: skip
