"""The live view: what a person watching the pipeline wants to see, refreshed every cycle.

:func:`gather` reads MongoDB and each service's /healthz and /metrics; :func:`render` turns that snapshot into
a table (no I/O), and :func:`status_line` into one plain line for logs and terminals that are not TTYs.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from prometheus_client.parser import text_string_to_metric_families
from pymongo.database import Database
from pymongo.errors import PyMongoError
from rich.console import Group
from rich.table import Table
from rich.text import Text

from services.pipeline.supervisor import Child, last_line
from services.scoring.score import POOLED
from services.scoring.stored import load_closes, load_predictions
from services.scoring.tables import rows_from_frames
from shared.layout import newest_bar_time

# The span shown ends at the newest stored bar (data time): a replay of last year looks like a live day.
WINDOW = timedelta(minutes=30)
NOT_YET = "not yet"


@dataclass
class TickerRow:
    ticker: str
    close: float | None = None
    bar_ts: datetime | None = None
    yhat: float | None = None
    pred_ts: datetime | None = None
    mse_ratio: float | None = None
    scored: int = 0


@dataclass
class ServiceRow:
    name: str
    state: str
    lag: int | None = None
    last_log: str = ""


@dataclass
class Snapshot:
    at: datetime
    tickers: list[TickerRow]
    services: list[ServiceRow]
    database_error: str | None = None
    pooled_ratio: float | None = None
    # The newest stored bar: the view's span ends there.
    data_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def probe(port: int, host: str = "127.0.0.1") -> tuple[bool | None, int | None]:
    """(ready, consumer lag) from a service's /healthz and /metrics; None where it does not answer."""
    base = f"http://{host}:{port}"
    try:
        # A loopback http URL built here from a port number: no scheme comes from outside.
        with urllib.request.urlopen(f"{base}/healthz", timeout=0.5) as response:  # noqa: S310
            ready: bool | None = bool(json.loads(response.read()).get("ready"))
    except urllib.error.HTTPError as error:
        ready = False if error.code == 503 else None
    except (OSError, ValueError):
        return None, None
    lag = None
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=0.5) as response:  # noqa: S310
            for family in text_string_to_metric_families(response.read().decode()):
                if family.name == "portfolio_consumer_lag":
                    lag = int(sum(sample.value for sample in family.samples))
    except (OSError, ValueError):
        pass
    return ready, lag


def _service_rows(children: dict[str, Child], ports: dict[str, int]) -> list[ServiceRow]:
    rows = []
    for name, child in children.items():
        code = child.exit_code
        if code is not None:
            rows.append(ServiceRow(name, f"exited ({code})", last_log=last_line(child.log_path)))
            continue
        ready, lag = probe(ports[name])
        state = {True: "ready", False: "starting", None: "starting"}[ready]
        rows.append(ServiceRow(name, state, lag, last_line(child.log_path)))
    return rows


def _ticker_rows(
    db: Database[dict[str, Any]], tickers: list[str]
) -> tuple[list[TickerRow], float | None, datetime | None]:
    newest = newest_bar_time(db, tickers)
    if newest is None:
        return [TickerRow(t) for t in tickers], None, None
    closes = load_closes(db, tickers, newest - WINDOW, newest)
    predictions = load_predictions(db, tickers, newest - WINDOW, newest + timedelta(minutes=5))
    rows, pooled = score_rows(tickers, closes, predictions)
    return rows, pooled, newest


def score_rows(
    tickers: list[str], closes: pd.DataFrame, predictions: pd.DataFrame
) -> tuple[list[TickerRow], float | None]:
    """The view's rows from frames of closes and predictions; scores from the one scorer."""
    rows = {t: TickerRow(t) for t in tickers}
    for ticker, group in closes.groupby("ticker"):
        last = group.iloc[-1]
        rows[str(ticker)].close, rows[str(ticker)].bar_ts = float(last["close"]), last["ts"].to_pydatetime()
    for ticker, group in predictions.groupby("ticker"):
        last = group.iloc[-1]
        rows[str(ticker)].yhat, rows[str(ticker)].pred_ts = float(last["yhat"]), last["ts"].to_pydatetime()
    pooled: float | None = None
    for record in rows_from_frames(closes, predictions):
        if record["forecaster"] != "model":
            continue
        ratio = record.get("mse_ratio")
        if record["ticker"] == POOLED:
            pooled = None if ratio is None else float(ratio)
        elif record["ticker"] in rows:
            rows[str(record["ticker"])].mse_ratio = None if ratio is None else float(ratio)
            rows[str(record["ticker"])].scored = int(record["n"])
    return list(rows.values()), pooled


def gather(
    db: Database[dict[str, Any]], tickers: list[str], children: dict[str, Child], ports: dict[str, int]
) -> Snapshot:
    now = datetime.now(UTC)
    services = _service_rows(children, ports)
    try:
        rows, pooled, newest = _ticker_rows(db, tickers)
        return Snapshot(now, rows, services, pooled_ratio=pooled, data_at=newest)
    except PyMongoError as error:
        return Snapshot(now, [TickerRow(t) for t in tickers], services, database_error=type(error).__name__)


def _fmt(value: float | None, spec: str, missing: str = "–") -> str:
    return missing if value is None or pd.isna(value) else format(value, spec)


def _hhmm(value: datetime | None) -> str:
    return "–" if value is None else f"{value:%H:%M}"


def render(snapshot: Snapshot, title: str) -> Group:
    market = Table(title=f"{title} · {snapshot.at:%Y-%m-%d %H:%M:%S} UTC", title_justify="left", expand=False)
    for header, justify in [
        ("ticker", "left"),
        ("last close", "right"),
        ("bar", "right"),
        ("prediction", "right"),
        ("for", "right"),
        ("MSE / naive", "right"),
        ("scored", "right"),
    ]:
        market.add_column(header, justify=justify)  # type: ignore[arg-type]
    for row in snapshot.tickers:
        ratio = _fmt(row.mse_ratio, ".3f", NOT_YET)
        style = (
            ""
            if row.mse_ratio is None or pd.isna(row.mse_ratio)
            else ("green" if row.mse_ratio < 1 else "red")
        )
        market.add_row(
            row.ticker,
            _fmt(row.close, ",.2f"),
            _hhmm(row.bar_ts),
            _fmt(row.yhat, ",.2f"),
            _hhmm(row.pred_ts),
            Text(ratio, style=style),
            str(row.scored),
        )
    services = Table(expand=False)
    for header in ("service", "state", "consumer lag", "last log line"):
        services.add_column(header)
    for svc in snapshot.services:
        style = {"ready": "green", "starting": "yellow"}.get(svc.state, "red")
        services.add_row(svc.name, Text(svc.state, style=style), _fmt(svc.lag, "d"), svc.last_log[-90:])
    pooled = _fmt(snapshot.pooled_ratio, ".3f", NOT_YET)
    data_at = "no bars yet" if snapshot.data_at is None else f"{snapshot.data_at:%Y-%m-%d %H:%M} UTC"
    notes = [
        (
            f"pooled MSE ratio to naive (model forecasts, relative errors) over the {WINDOW.seconds // 60} "
            f"minutes of data up to the newest bar ({data_at}): {pooled}"
        )
    ]
    if snapshot.database_error:
        notes.append(f"database unreachable ({snapshot.database_error}); retrying")
    notes.append("Ctrl-C stops every service cleanly.")
    return Group(market, services, Text("\n".join(notes), style="dim"))


def status_line(snapshot: Snapshot) -> str:
    bars = sum(1 for r in snapshot.tickers if r.close is not None)
    predicted = sum(1 for r in snapshot.tickers if r.yhat is not None)
    services = " ".join(
        f"{s.name}={s.state}" + (f"(lag {s.lag})" if s.lag is not None else "") for s in snapshot.services
    )
    return (
        f"{snapshot.at:%H:%M:%S} tickers_with_bars={bars}/{len(snapshot.tickers)} "
        f"tickers_with_predictions={predicted}/{len(snapshot.tickers)} "
        f"mse_ratio_to_naive={_fmt(snapshot.pooled_ratio, '.3f', NOT_YET).replace(' ', '_')} {services}"
    )
