"""The messages on our topics: the public contract, versioned, encoded and decoded here and nowhere else.

Every message is UTF-8 JSON with a version field ``v``. A consumer decodes with :func:`decode_bar` or
:func:`decode_prediction`; anything it cannot accept raises :class:`MessageError` with a short ``reason``
code (``not_json``, ``unknown_version``, ``invalid``, ``too_large``) suitable for a dead-letter header.
A new, incompatible version gets a new model and a new ``v``; the decoders keep accepting the old ones.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)

from shared.settings import TICKER_PATTERN


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp needs a timezone (UTC, written with Z)")
    return value.astimezone(UTC)


def format_ts(value: datetime) -> str:
    """ISO-8601 in UTC with ``Z``: the one way timestamps are written on our topics."""
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


UtcDatetime = Annotated[datetime, AfterValidator(_utc), PlainSerializer(format_ts, return_type=str)]


def _on_the_minute(value: datetime) -> datetime:
    if value.second or value.microsecond:
        raise ValueError("ts must be the start of a minute (seconds 00)")
    return value


MinuteTs = Annotated[UtcDatetime, AfterValidator(_on_the_minute)]
Ticker = Annotated[str, Field(pattern=TICKER_PATTERN.pattern, description="Exchange symbol, e.g. AAPL")]
Price = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


class BarV1(_Message):
    """One 1-minute OHLCV bar. Key: the ticker. Topic: ``PORTFOLIO_BARS_TOPIC``."""

    v: Literal[1] = 1
    ticker: Ticker
    ts: MinuteTs = Field(description="Start of the minute, UTC")
    open: Price
    high: Price
    low: Price
    close: Price
    volume: int = Field(ge=0)
    source: str = Field(min_length=1, max_length=32, description="yfinance, replay or synthetic")
    rev: int = Field(
        0, ge=0, description="Grows each time the same (ticker, ts) is republished with new values"
    )
    final: bool = Field(False, description="True once the minute has closed")

    @model_validator(mode="after")
    def _consistent_ohlc(self) -> BarV1:
        if self.low > self.high:
            raise ValueError(f"low {self.low} > high {self.high}")
        if not (self.low <= self.open <= self.high and self.low <= self.close <= self.high):
            raise ValueError("open and close must lie within [low, high]")
        return self


class PredictionV1(_Message):
    """A forecast of one ticker's close. Key: the ticker. Topic: ``PORTFOLIO_PREDICTIONS_TOPIC``."""

    v: Literal[1] = 1
    ticker: Ticker
    ts: MinuteTs = Field(description="The minute predicted, UTC")
    yhat: Price = Field(description="Predicted close price")
    horizon_min: int = Field(1, ge=1)
    based_on_ts: MinuteTs = Field(description="The last bar the forecast used")
    model_version: str = Field(min_length=1, max_length=128)
    trained_at: UtcDatetime
    target: Literal["return", "price"]
    # Optional (added within v1; older consumers ignore them, older messages decode without them).
    q10: Price | None = Field(None, description="10% quantile of the close at ts")
    q90: Price | None = Field(None, description="90% quantile of the close at ts")

    @model_validator(mode="after")
    def _forecasts_the_future(self) -> PredictionV1:
        if (self.q10 is None) != (self.q90 is None):
            raise ValueError("q10 and q90 come together or not at all")
        if self.q10 is not None and self.q90 is not None and self.q10 > self.q90:
            raise ValueError(f"q10 {self.q10} > q90 {self.q90}")
        if self.ts <= self.based_on_ts:
            raise ValueError("ts must be after based_on_ts")
        if self.ts != self.based_on_ts + timedelta(minutes=self.horizon_min):
            raise ValueError("ts must be based_on_ts + horizon_min minutes")
        return self


Bar = BarV1
Prediction = PredictionV1


class MessageError(ValueError):
    """A message that cannot be accepted. ``reason`` is a short code for dead-letter headers."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def encode(message: BarV1 | PredictionV1) -> bytes:
    # None fields (the optional interval) are left out: a message without them is the same bytes as before.
    return message.model_dump_json(exclude_none=True).encode("utf-8")


_DECODERS: dict[str, dict[int, type[_Message]]] = {
    "bar": {1: BarV1},
    "prediction": {1: PredictionV1},
}


def _decode(kind: str, data: bytes | None, max_bytes: int | None) -> _Message:
    if data is None:
        raise MessageError("not_json", "empty message (null value)")
    if max_bytes is not None and len(data) > max_bytes:
        raise MessageError("too_large", f"{len(data)} bytes > {max_bytes}")
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageError("not_json", str(exc)) from None
    if not isinstance(raw, dict):
        raise MessageError("invalid", f"expected a JSON object, got {type(raw).__name__}")
    version = raw.get("v")
    model = _DECODERS[kind].get(version) if isinstance(version, int) else None
    if model is None:
        raise MessageError(
            "unknown_version", f"{kind} version {version!r} is not one of {sorted(_DECODERS[kind])}"
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or kind}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise MessageError("invalid", problems) from None


def decode_bar(data: bytes | None, max_bytes: int | None = None) -> BarV1:
    """Decode and validate a bar message; raise :class:`MessageError` with the reason."""
    message = _decode("bar", data, max_bytes)
    assert isinstance(message, BarV1)
    return message


def decode_prediction(data: bytes | None, max_bytes: int | None = None) -> PredictionV1:
    """Decode and validate a prediction message; raise :class:`MessageError` with the reason."""
    message = _decode("prediction", data, max_bytes)
    assert isinstance(message, PredictionV1)
    return message
