"""The messages on our topics: the public contract, versioned, encoded and decoded here and nowhere else.

Every message is UTF-8 JSON with a version field ``v``. A consumer decodes with :func:`decode_bar` or
:func:`decode_prediction`; anything it cannot accept raises :class:`MessageError` with a short ``reason``
code (``not_json``, ``unknown_version``, ``invalid``, ``too_large``) suitable for a dead-letter header.
A new, incompatible version gets a new model and a new ``v``; the decoders keep accepting the old ones.

Decoding is strict: no type is coerced (``"100"`` is not a volume, ``1`` is not ``true``, ``true`` is not
version 1), integers fit the database's signed 64 bits, and a timestamp is an RFC 3339 string in UTC within
:data:`EARLIEST_TS` and one day after now. What is refused never reaches the database.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from shared.settings import SERIES_PATTERN, TICKER_PATTERN

# BSON and MongoDB integers are signed 64-bit: a larger one cannot be stored (pymongo raises OverflowError).
INT64_MAX = 2**63 - 1
# Market data before this is a mistake (an epoch of 0, seconds read as milliseconds), not history.
EARLIEST_TS = datetime(1990, 1, 1, tzinfo=UTC)
# A bar or forecast stamped more than a day ahead is a clock or unit error.
MAX_AHEAD = timedelta(days=1)
# RFC 3339 date-time in UTC: "Z" or a zero offset. Other offsets are refused on the wire: our producers
# write Z, and an offset would hide a local-time bug.
_RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]00:00)", re.ASCII)


def _rfc3339(value: Any) -> Any:
    # Strict validation parses no strings into datetimes: parse the one format we accept here, and refuse
    # numbers (epoch seconds or milliseconds are ambiguous) and every other shape.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        # pydantic turns a ValueError into a validation error naming the field; a TypeError it would not.
        raise ValueError(f"timestamp must be an RFC 3339 string in UTC, not {type(value).__name__}")  # noqa: TRY004
    return _parse_rfc3339(value)


# Timestamp checks are cached: a minute's messages (2,000 bars in, 2,000 predictions out) share a few
# timestamps, and these checks were most of validating one (issue 12). Only successes are cached, and a
# timestamp once valid stays valid (the "a day ahead" bound only moves later).
@functools.lru_cache(maxsize=4096)
def _parse_rfc3339(value: str) -> datetime:
    if not _RFC3339_UTC.fullmatch(value):
        raise ValueError("timestamp must be RFC 3339 in UTC, e.g. 2026-11-25T14:31:00Z")
    return datetime.fromisoformat(value)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp needs a timezone (UTC, written with Z)")
    return value.astimezone(UTC)


# A minute's messages share their few timestamps (2,000 predictions: three distinct values), and strftime
# was 40% of encoding one; equal datetimes are the same instant, so they format the same.
@functools.lru_cache(maxsize=4096)
def format_ts(value: datetime) -> str:
    """ISO-8601 in UTC with ``Z``: the one way timestamps are written on our topics."""
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=4096)
def _sane_utc(value: datetime) -> datetime:
    """``value`` in UTC, if it has a timezone and lies within [EARLIEST_TS, now + MAX_AHEAD]."""
    value = _utc(value)
    if value < EARLIEST_TS:
        raise ValueError(f"timestamp {format_ts(value)} is before {EARLIEST_TS:%Y-%m-%d}")
    if value > datetime.now(UTC) + MAX_AHEAD:
        raise ValueError(f"timestamp {format_ts(value)} is more than a day ahead")
    return value


UtcDatetime = Annotated[
    datetime,
    BeforeValidator(_rfc3339),
    AfterValidator(_sane_utc),
    PlainSerializer(format_ts, return_type=str),
]


def _on_the_minute(value: datetime) -> datetime:
    if value.second or value.microsecond:
        raise ValueError("ts must be the start of a minute (seconds 00)")
    return value


MinuteTs = Annotated[UtcDatetime, AfterValidator(_on_the_minute)]
Ticker = Annotated[str, Field(pattern=TICKER_PATTERN.pattern, description="Exchange symbol, e.g. AAPL")]
# What a prediction forecasts: a ticker, or the portfolio's value (PORTFOLIO_SERIES), which no bar carries.
Series = Annotated[
    str, Field(pattern=SERIES_PATTERN.pattern, description="A ticker, or _PORTFOLIO: the portfolio's value")
]
Price = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
# Printable ASCII without spaces: these strings become stored values and log fields.
Label = Annotated[str, Field(min_length=1, pattern=r"^[\x21-\x7e]+$")]


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    @model_validator(mode="before")
    @classmethod
    def _version_on_the_wire(cls, data: Any, info: ValidationInfo) -> Any:
        # Decoding straight from JSON (the fast path of _decode) must refuse what the careful path does: a
        # missing "v" (the field's default is for building messages in code) and a "v" that is not an int
        # (true and 1.0 would otherwise pass for 1).
        if info.context == _WIRE and not (isinstance(data, dict) and type(data.get("v")) is int):
            raise ValueError("v must be given as an integer")
        return data


class BarV1(_Message):
    """One 1-minute OHLCV bar. Key: the ticker. Topic: ``PORTFOLIO_BARS_TOPIC``."""

    v: Literal[1] = 1
    ticker: Ticker
    ts: MinuteTs = Field(description="Start of the minute, UTC")
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Count
    source: Label = Field(max_length=32, description="yfinance, replay or synthetic")
    rev: Count = Field(
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
    """A forecast of one ticker's close, or of the portfolio's value (ticker ``_PORTFOLIO``). Key: the
    ticker. Topic: ``PORTFOLIO_PREDICTIONS_TOPIC``."""

    v: Literal[1] = 1
    ticker: Series
    ts: MinuteTs = Field(description="The minute predicted, UTC")
    yhat: Price = Field(description="Predicted close price")
    horizon_min: int = Field(1, ge=1, le=10_080)
    based_on_ts: MinuteTs = Field(description="The last bar the forecast used")
    model_version: Label = Field(max_length=128)
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
# The newest version of each kind, tried first straight from the bytes: pydantic's own JSON parser and one
# validation take half the time of json.loads and then validating the dict (issue 12: 2,000 bars a minute).
_NEWEST = {kind: versions[max(versions)] for kind, versions in _DECODERS.items()}
_WIRE = {"wire": True}


def _decode(kind: str, data: bytes | None, max_bytes: int | None) -> _Message:
    if data is None:
        raise MessageError("not_json", "empty message (null value)")
    if max_bytes is not None and len(data) > max_bytes:
        raise MessageError("too_large", f"{len(data)} bytes > {max_bytes}")
    try:
        return _NEWEST[kind].model_validate_json(data, strict=True, context=_WIRE)
    except ValidationError:
        pass  # an older version, or not valid: the careful path below decides, and names the reason
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageError("not_json", str(exc)) from None
    except RecursionError:
        raise MessageError("not_json", "nested too deeply") from None
    if not isinstance(raw, dict):
        raise MessageError("invalid", f"expected a JSON object, got {type(raw).__name__}")
    version = raw.get("v")
    # type() and not isinstance(): true is an int in Python, and must not pass for version 1.
    model = _DECODERS[kind].get(version) if type(version) is int else None
    if model is None:
        raise MessageError(
            "unknown_version", f"{kind} version {version!r} is not one of {sorted(_DECODERS[kind])}"
        )
    try:
        # Strict here, at the edge: the services build messages from their own typed values.
        return model.model_validate(raw, strict=True)
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
