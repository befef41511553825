"""The trainer's side of the wire: a bar message into what the forecaster takes, a forecast into the
prediction message it publishes. No I/O."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from services.trainer.forecaster.records import BarIn, Forecast
from services.trainer.model.series import from_minute, to_minute
from services.trainer.model.windows import Target
from shared.schemas import EARLIEST_TS, MAX_AHEAD, BarV1, PredictionV1, encode, format_ts
from shared.settings import SERIES_PATTERN


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


# Where Python's float repr and pydantic's JSON write a float the same way: below 1e-4 repr writes
# "1e-05" and pydantic "0.00001" (measured over 10^6 floats; above, they agreed to 1e25). The upper bound
# is far below where repr turns to exponents (1e16) and far above any price.
_MIN_FAST_FLOAT, _MAX_FAST_FLOAT = 1e-4, 1e15
# PredictionV1's Label for model_version, minus `"` and `\` (JSON would escape them: the validated path
# writes those).
_PLAIN_LABEL = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}", re.ASCII)
_MAX_HORIZON = 10_080  # PredictionV1.horizon_min's bound
_EARLIEST_MINUTE = to_minute(EARLIEST_TS)


def _price(value: object) -> str | None:
    # isinstance, not type(): the forecaster's quantiles are numpy float64 (a float subclass), and
    # float.__repr__ writes them as floats (repr() would write "np.float64(...)"). NaN fails the range.
    if isinstance(value, float) and _MIN_FAST_FLOAT <= value < _MAX_FAST_FLOAT:
        return float.__repr__(value)
    return None


class PredictionEncoder:
    """The bytes of ``encode(prediction_message(forecast, target))`` without a pydantic model per forecast.

    Building and validating a PredictionV1 took ~6 us a forecast, 12 ms of every minute at 500 tickers x
    4 horizons (issue 18). A poll's forecasts share a few minutes, one trained_at and one model_version,
    so those are checked and formatted once; each forecast then costs a few range checks and one string.
    Whatever the fast path cannot prove valid and written identically (odd floats, labels JSON would
    escape, out-of-range times, wrong types) goes through the validated path, which also raises as before.
    Build one per poll: the "a day ahead" bound is taken at construction, and it only moves later, so a
    message accepted here would be accepted by the schema at any later time.
    """

    def __init__(self, target: Target, now: datetime | None = None) -> None:
        self.target = target
        latest = (now or datetime.now(UTC)) + MAX_AHEAD
        self._latest = latest
        # Minus one: a minute exactly at the bound is left to the validated path rather than reasoned about.
        self._latest_minute = to_minute(latest - timedelta(minutes=1))
        self._minutes: dict[int, str | None] = {}
        self._tails: dict[tuple[str, datetime], str | None] = {}
        self._tickers: dict[str, bool] = {}
        # The last forecast's (ticker, based_on, yhat, model_version, trained_at) and their text.
        self._key: tuple[object, ...] = (None,) * 5
        self._parts: tuple[str, str, str] | None = None

    def encode(self, forecast: Forecast) -> bytes:
        fast = self._fast(forecast)
        if fast is None:
            return encode(prediction_message(forecast, self.target))
        return fast.encode("ascii")

    def _fast(self, fc: Forecast) -> str | None:
        ticker, based_on, minute, yhat, _, version, trained_at, _, q10, q90 = fc
        # A bar's horizons share its ticker, minute, point forecast and version (the same objects): their
        # text is checked and written once, and reused while the next forecast holds the very same objects.
        key = self._key
        if not (
            ticker is key[0]
            and based_on is key[1]
            and yhat is key[2]
            and version is key[3]
            and trained_at is key[4]
        ):
            self._key = (ticker, based_on, yhat, version, trained_at)
            self._parts = self._bar_parts(ticker, based_on, yhat, version, trained_at)
        parts = self._parts
        if parts is None or type(minute) is not int or not 1 <= minute - based_on <= _MAX_HORIZON:
            return None
        ts = self._minute(minute)
        if ts is None:
            return None
        if q10 is None and q90 is None:
            interval = ""
        # _price of each, inlined (twice a message), and q10 <= q90: one chained comparison holds all.
        elif (
            isinstance(q10, float)
            and isinstance(q90, float)
            and _MIN_FAST_FLOAT <= q10 <= q90 < _MAX_FAST_FLOAT
        ):
            interval = f',"q10":{float.__repr__(q10)},"q90":{float.__repr__(q90)}'
        else:
            return None
        head, middle, rest = parts
        return f"{head}{ts}{middle}{minute - based_on}{rest}{interval}}}"

    def _bar_parts(
        self, ticker: object, based_on: object, yhat: object, version: object, trained_at: object
    ) -> tuple[str, str, str] | None:
        """The text around a forecast's target minute and horizon, or None where the fast path cannot write
        it. Exact types before the caches: a subclass equal to a cached value must not reuse its text."""
        if type(based_on) is not int or type(ticker) is not str or type(version) is not str:
            return None
        if type(trained_at) is not datetime:
            return None
        price, based_on_ts = _price(yhat), self._minute(based_on)
        if price is None or based_on_ts is None or not self._ticker(ticker):
            return None
        tail = self._tail(version, trained_at)
        if tail is None:
            return None
        return (
            f'{{"v":1,"ticker":"{ticker}","ts":"',
            f'","yhat":{price},"horizon_min":',
            f',"based_on_ts":"{based_on_ts}"{tail}',
        )

    def _minute(self, minute: int) -> str | None:
        try:
            return self._minutes[minute]
        except KeyError:
            ok = _EARLIEST_MINUTE <= minute <= self._latest_minute
            text = self._minutes[minute] = format_ts(from_minute(minute)) if ok else None
            return text

    def _ticker(self, ticker: str) -> bool:
        try:
            return self._tickers[ticker]
        except KeyError:
            ok = self._tickers[ticker] = SERIES_PATTERN.fullmatch(ticker) is not None
            return ok

    def _tail(self, version: str, trained_at: datetime) -> str | None:
        key = (version, trained_at)
        try:
            return self._tails[key]
        except KeyError:
            text = self._tails[key] = self._format_tail(version, trained_at)
            return text

    def _format_tail(self, version: str, trained_at: datetime) -> str | None:
        if not _PLAIN_LABEL.fullmatch(version) or self.target not in ("return", "price"):
            return None
        if trained_at.tzinfo is None or trained_at.utcoffset() is None:
            return None
        if not EARLIEST_TS <= trained_at <= self._latest:
            return None
        return f',"model_version":"{version}","trained_at":"{format_ts(trained_at)}","target":"{self.target}"'


def bar_in(bar: BarV1) -> BarIn:
    return BarIn(bar.ticker, to_minute(bar.ts), bar.close, bar.rev, bar.final, bar.open, bar.high, bar.low,
                 bar.volume)  # fmt: skip
