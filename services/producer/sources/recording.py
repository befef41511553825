"""Reading a recorded file of bars (CSV or Parquet) row by row: a bad row is skipped and counted.

A row is skipped, with a count per reason and its first line numbers in the log, when:

* ``too_many_fields`` / ``too_few_fields``: a CSV line with more or fewer fields than the header;
* ``empty_ticker``: no ticker;
* ``unreadable_time``: a time that is empty or not a date;
* ``time_out_of_range``: a time before 1970 or from 2262 on (past what nanosecond timestamps hold);
* ``duplicate``: the same ticker and minute again with the same values;
* ``conflicting_duplicate``: the same ticker and minute again with other values. The row that comes last
  in the file is the one replayed (a recording appends, so the later row is the later revision); the
  earlier ones are skipped.

Rows of tickers not asked for are left out without a word. Values that are not numbers become NaN here and
are rejected with their reason by ``validation`` like any other bad value. The whole file is refused
(:class:`RecordingError`) only when it cannot be read, lacks a required column or has no usable row.
"""

from __future__ import annotations

import csv
import io
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from services.producer.sources.base import COLUMNS

logger = logging.getLogger(__name__)

ALIASES = {
    "symbol": "ticker",
    "datetime": "ts",
    "date": "ts",
    "timestamp": "ts",
    "time": "ts",
}
VALUES = ("open", "high", "low", "close", "volume")
EARLIEST = pd.Timestamp("1970-01-01", tz="UTC")
# pandas' nanosecond timestamps end on 2262-04-11; the producer's frames are nanosecond.
LATEST = pd.Timestamp("2262-01-01", tz="UTC")
FIRST_LINES_LOGGED = 5
_LINE = "_line"


class RecordingError(ValueError):
    """A recording that cannot be replayed at all; the message names the file and the problem."""


@dataclass
class SkippedRows:
    """Rows left out of a recording, by reason, with the line (CSV) or row (Parquet) numbers."""

    where: str = "line"
    lines: dict[str, list[int]] = field(default_factory=dict)

    def add(self, reason: str, lines: list[int]) -> None:
        if lines:
            self.lines.setdefault(reason, []).extend(lines)

    @property
    def counts(self) -> Counter[str]:
        return Counter({reason: len(lines) for reason, lines in self.lines.items()})

    def summary(self) -> str:
        return ", ".join(f"{n} {reason}" for reason, n in sorted(self.counts.items())) or "none"

    def log(self, path: Path) -> None:
        for reason, lines in sorted(self.lines.items()):
            first = ", ".join(str(n) for n in sorted(lines)[:FIRST_LINES_LOGGED])
            more = " ..." if len(lines) > FIRST_LINES_LOGGED else ""
            logger.warning(
                "%s: %d rows skipped (%s), at %s %s%s", path, len(lines), reason, self.where, first, more
            )


def read_recording(path: Path, tickers: list[str]) -> tuple[pd.DataFrame, SkippedRows]:
    """The file's usable bars for ``tickers`` (``sources.base.COLUMNS``, sorted by time then ticker) and what
    was skipped. Raises :class:`RecordingError` when nothing in it can be replayed."""
    if path.suffix.lower() in (".parquet", ".pq"):
        raw, skipped = _read_parquet(path), SkippedRows(where="row")
    else:
        raw, skipped = _read_csv(path)
    raw = raw.rename(columns=lambda c: ALIASES.get(str(c).strip().lower(), str(c).strip().lower()))
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        names = [c for c in raw.columns if c != _LINE]
        raise RecordingError(
            f"{path}: no column for {', '.join(missing)} (its header has {names}; a time column may be "
            "called ts, datetime, date, timestamp or time, a ticker column ticker or symbol)"
        )
    bars = raw[[_LINE, *COLUMNS]].copy()
    bars = _keep_named_tickers(bars, tickers, skipped)
    bars = _keep_readable_times(bars, skipped)
    for column in VALUES:
        bars[column] = pd.to_numeric(bars[column], errors="coerce")
    bars = _drop_duplicates(bars, skipped)
    skipped.log(path)
    if bars.empty:
        raise RecordingError(
            f"{path}: no usable rows for {', '.join(tickers)} (rows skipped: {skipped.summary()})"
        )
    bars = bars.sort_values(["ts", "ticker"], kind="stable").reset_index(drop=True)
    return bars[list(COLUMNS)], skipped


def _read_csv(path: Path) -> tuple[pd.DataFrame, SkippedRows]:
    skipped = SkippedRows(where="line")
    try:
        # utf-8-sig drops a byte-order mark; newline="" lets the csv module take CRLF and LF alike.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise RecordingError(f"{path}: not UTF-8 text (byte {error.start} cannot be decoded)") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or not any(cell.strip() for cell in header):
        raise RecordingError(f"{path}: the file is empty (no header line)")
    width = len(header)
    records: list[list[str]] = []
    lines: list[int] = []
    too_many: list[int] = []
    too_few: list[int] = []
    for record in reader:
        if not any(cell.strip() for cell in record):
            continue  # blank lines, as pandas skips them
        if len(record) > width:
            too_many.append(reader.line_num)
        elif len(record) < width:
            too_few.append(reader.line_num)
        else:
            records.append(record)
            lines.append(reader.line_num)
    skipped.add("too_many_fields", too_many)
    skipped.add("too_few_fields", too_few)
    frame = pd.DataFrame(records, columns=[str(c) for c in header], dtype=object)
    if frame.columns.duplicated().any():
        raise RecordingError(f"{path}: the header names a column twice: {header}")
    frame[_LINE] = lines
    return frame, skipped


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # noqa: BLE001 (pyarrow raises its own types for each way a file is broken)
        raise RecordingError(f"{path}: not a readable Parquet file ({type(error).__name__})") from None
    frame = frame.reset_index(drop=True)
    frame[_LINE] = np.arange(1, len(frame) + 1)
    return frame


def _keep_named_tickers(bars: pd.DataFrame, tickers: list[str], skipped: SkippedRows) -> pd.DataFrame:
    ticker = bars["ticker"].astype("string").fillna("").str.strip().str.upper()
    empty = (ticker == "").to_numpy()
    skipped.add("empty_ticker", bars[_LINE][empty].tolist())
    bars = bars.assign(ticker=ticker.astype(object))
    return bars[bars["ticker"].isin(tickers).to_numpy() & ~empty]


def _keep_readable_times(bars: pd.DataFrame, skipped: SkippedRows) -> pd.DataFrame:
    raw = bars["ts"]
    if pd.api.types.is_datetime64_any_dtype(raw):
        ts = pd.Series(pd.DatetimeIndex(raw), index=bars.index)
        ts = ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")
    else:
        # Naive times are UTC; any offset is converted to it. Unparseable text and times past what even
        # microseconds hold come back as NaT.
        ts = pd.to_datetime(raw.astype("string").str.strip(), format="mixed", errors="coerce", utc=True)
    unreadable = ts.isna().to_numpy()
    out_of_range = ~unreadable & ((ts < EARLIEST) | (ts >= LATEST)).fillna(False).to_numpy(dtype=bool)
    skipped.add("unreadable_time", bars[_LINE][unreadable].tolist())
    skipped.add("time_out_of_range", bars[_LINE][out_of_range].tolist())
    keep = ~unreadable & ~out_of_range
    bars = bars[keep].copy()
    bars["ts"] = pd.DatetimeIndex(ts[keep]).floor("min").as_unit("ns")
    return bars


def _drop_duplicates(bars: pd.DataFrame, skipped: SkippedRows) -> pd.DataFrame:
    """One row per (ticker, minute): the last in the file."""
    bars = bars.sort_values(_LINE, kind="stable")
    superseded = bars.duplicated(["ticker", "ts"], keep="last").to_numpy()
    if not superseded.any():
        return bars
    kept = bars[~superseded]
    earlier = bars[superseded].merge(
        kept[["ticker", "ts", *VALUES]], on=["ticker", "ts"], how="left", suffixes=("", "_kept")
    )
    same = np.ones(len(earlier), dtype=bool)
    for column in VALUES:
        mine, theirs = earlier[column].to_numpy(), earlier[f"{column}_kept"].to_numpy()
        same &= (mine == theirs) | (np.isnan(mine) & np.isnan(theirs))
    skipped.add("duplicate", earlier[_LINE][same].tolist())
    skipped.add("conflicting_duplicate", earlier[_LINE][~same].tolist())
    return kept
