"""Query parameters of the read API, checked before anything is looked up; no I/O.

A bad value raises :class:`QueryError` with a message that names the parameter and what it accepts, and
never repeats the value sent: an error body is no place for a 5,000-character or script-laden input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.settings import PORTFOLIO_SERIES, TICKER_PATTERN

DEFAULT_MINUTES = 120
# A year of calendar minutes: beyond it a request is a mistake, and its answer would not fit a page.
MAX_MINUTES = 525_600
MAX_HORIZON = 10_080
# ``last``: the newest rows of a span; 100 sessions of 390 minutes is more than any panel draws.
MAX_LAST = 39_000
# The longest RFC 3339 time ("2026-11-25T14:31:00.123456789+00:00") with room to spare.
_MAX_TIME_CHARS = 40
START_OF_TIME = datetime(1990, 1, 1, tzinfo=UTC)
END_OF_TIME = datetime(2200, 1, 1, tzinfo=UTC)


class QueryError(ValueError):
    """A bad query parameter: ``status`` 400 (malformed) or 404 (well formed, names nothing held)."""

    def __init__(self, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


@dataclass(frozen=True)
class Span:
    """``minutes`` back from the newest bar, or ``since``/``until`` (either may be open)."""

    minutes: int | None
    since: datetime | None
    until: datetime | None

    def bounds(self, newest: datetime | None) -> tuple[datetime, datetime]:
        """``[since, until]`` in data time: ``minutes`` end at the newest bar (a replay of last year is
        shown as it was, not measured from today's clock)."""
        end = newest or datetime.now(UTC)
        if self.minutes is not None:
            return end - timedelta(minutes=self.minutes - 1), end
        return self.since or START_OF_TIME, self.until or END_OF_TIME


def ticker(params: Mapping[str, str], series: bool = False) -> str:
    """A ticker symbol; with ``series``, the portfolio's series (``shared.settings.PORTFOLIO_SERIES``, the
    one name outside the ticker pattern that /api/predictions answers for) too."""
    value = params.get("ticker")
    if not value:
        raise QueryError("ticker: required, e.g. ?ticker=AAPL")
    if series and value == PORTFOLIO_SERIES:
        return value
    value = value.upper()
    if not TICKER_PATTERN.fullmatch(value):
        raise QueryError("ticker: not a ticker symbol (1 to 15 of A-Z, 0-9, ^, = and -)")
    return value


def _integer(params: Mapping[str, str], name: str, high: int) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    # isdigit() alone would let "²" through, and int() accepts "1_000" and surrounding spaces.
    if not (value.isascii() and value.isdigit() and len(value) <= 7) or not 1 <= int(value) <= high:
        raise QueryError(f"{name}: a whole number from 1 to {high}")
    return int(value)


def _time(params: Mapping[str, str], name: str) -> datetime | None:
    value = params.get(name)
    if value is None:
        return None
    malformed = QueryError(f"{name}: an RFC 3339 time, e.g. 2026-11-25T14:31:00Z")
    if len(value) > _MAX_TIME_CHARS:
        raise malformed
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise malformed from None
    if parsed.tzinfo is None:
        raise QueryError(f"{name}: needs a time zone, e.g. 2026-11-25T14:31:00Z")
    return parsed.astimezone(UTC)


def span(params: Mapping[str, str]) -> Span:
    minutes = _integer(params, "minutes", MAX_MINUTES)
    since, until = _time(params, "since"), _time(params, "until")
    if minutes is not None and (since or until):
        raise QueryError("minutes: give minutes, or since/until, not both")
    if since and until and since > until:
        raise QueryError("since: must not be after until")
    if minutes is None and since is None and until is None:
        minutes = DEFAULT_MINUTES
    return Span(minutes, since, until)


def horizon(params: Mapping[str, str]) -> int | None:
    return _integer(params, "horizon", MAX_HORIZON)


def last(params: Mapping[str, str]) -> int | None:
    """``last=N``: only the newest N rows of the span (its newest N trading minutes: a panel asks for five
    calendar days and draws the newest 390 minutes that hold bars, whatever nights lie between)."""
    return _integer(params, "last", MAX_LAST)
