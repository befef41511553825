"""``portfolio backtest``: the trainer's walk-forward backtest of a recording, scored by the one scorer, and
its HTML report. The one place the trainer and the report meet: neither imports the other."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.cli import EXIT_BAD_SETTINGS, settings_for

if TYPE_CHECKING:
    from shared.session import SessionClock
    from shared.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="portfolio backtest",
        description="Walk-forward backtest of a recording with the trainer's own code, offline (no Kafka, "
        "no database): cold start on the first part, then every bar forecast, scored and learned from as "
        "live. Prints the model against the naive and AR baselines. Model settings from PORTFOLIO_*; "
        "the session from PORTFOLIO_SESSION, or else the one that fits the recording (New York's when most "
        "of its bars are in New York's regular session, else 24h).",
    )
    parser.add_argument("--file", type=Path, required=True, help="bars: .csv, .csv.gz or .parquet")
    parser.add_argument("--tickers", help="comma-separated subset (default: every ticker in the file)")
    parser.add_argument("--predictions", type=Path, help="write the forecasts here (.csv or .parquet)")
    parser.add_argument("--out", type=Path, help="write an HTML report here")
    parser.add_argument(
        "--cold-fraction", type=float, default=0.25, help="share of the minutes the cold start trains on"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="initial weights and sampling (to check a result is not luck)"
    )
    args = parser.parse_args(argv)
    if not args.file.is_file():
        print(f"portfolio backtest: no such file: {args.file}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    settings = settings_for("backtest")
    if settings is None:
        return EXIT_BAD_SETTINGS
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # torch comes with the trainer's modules: imported only once the arguments are known to be good.
    from services.scoring.tables import rows_from_frames, table
    from services.trainer.backtest import run_backtest, write_predictions
    from services.trainer.forecaster.records import Config
    from services.trainer.intervals.range_state import TRAIN_SHARE
    from services.trainer.intervals.range_table import format_table, horizon_table
    from services.trainer.model.network import set_threads
    from shared.settings import PORTFOLIO_SERIES

    set_threads(settings.trainer.torch_threads)
    loaded = _bars_with_portfolio(args, settings)
    if loaded is None:
        return EXIT_BAD_SETTINGS
    bars, session = loaded
    config = dataclasses.replace(Config.from_settings(settings), session=session)
    result = run_backtest(bars, config, args.cold_fraction, seed=args.seed)
    # The next minute's forecasts of the tickers: the walk-forward table and the report, as before.
    one = result.predictions[
        (result.predictions["horizon_min"] == 1) & (result.predictions["ticker"] != PORTFOLIO_SERIES)
    ]
    closes = result.closes[result.closes["ticker"] != PORTFOLIO_SERIES]
    rows = rows_from_frames(closes, one, every_lineage=True)
    print(
        f"{bars['ticker'].nunique()} tickers, {len(bars):,} bars; "
        f"cold start on {result.cold_start_bars:,} bars "
        f"in {result.cold_seconds:.1f} s, walk-forward over the rest in {result.walk_seconds:.1f} s\n"
    )
    print(table(rows))
    print(f"\n80% ranges per horizon (baselines fitted on the cold start's first {TRAIN_SHARE:.0%}; "
          f"{PORTFOLIO_SERIES}: the portfolio's value; the {session.name} session)")  # fmt: skip
    print(format_table(horizon_table(bars, result.predictions, result.boundary, config.horizons, session)))
    if args.predictions:
        write_predictions(result.predictions, args.predictions)
        print(f"\nwrote {args.predictions} ({len(result.predictions):,} forecasts)")
    if args.out:
        from services.report.page import write_report

        write_report(args.out, closes, one, title=f"backtest of {args.file.name}")
        print(f"wrote {args.out}")
    return 0


def _bars_with_portfolio(args: argparse.Namespace, settings: Settings) -> tuple[Any, SessionClock] | None:
    """The recording's bars (of ``--tickers``) with the portfolio's value as one more series, and the session
    clock they trade in; None (said on stderr) when the file, the weights or a horizon does not fit."""
    import pandas as pd

    from services.trainer.backtest import load_bars, normalized
    from services.trainer.intervals.range_grid import epoch_minutes, portfolio_closes

    tickers = [t.strip().upper() for t in args.tickers.split(",")] if args.tickers else None
    try:
        bars = load_bars(args.file, tickers)
    except (ValueError, OSError) as error:
        print(f"portfolio backtest: {error}", file=sys.stderr)
        return None
    session = _session(settings, epoch_minutes(bars["ts"]))
    if session is None:
        return None
    try:
        portfolio = portfolio_closes(bars, session, settings.trainer.weights or None)
    except ValueError as error:
        print(f"portfolio backtest: PORTFOLIO_WEIGHTS: {error}", file=sys.stderr)
        return None
    return normalized(pd.concat([bars, portfolio.assign(final=True, rev=0)], ignore_index=True)), session


def _session(settings: Settings, minutes: Any) -> SessionClock | None:
    """``PORTFOLIO_SESSION``'s clock, else the one the recording's bars (their epoch ``minutes``) trade in:
    a recording is not fed by the producer's source. None (said on stderr) when a horizon does not fit."""
    from shared.session import clock_for, clock_named

    name = settings.common.session
    session = clock_named(name) if name else clock_for(minutes)
    if max(settings.trainer.horizons) >= session.length:
        print(f"portfolio backtest: PORTFOLIO_HORIZONS_MIN: horizons are 1 to {session.length - 1} minutes "
              f"with the {session.name} session", file=sys.stderr)  # fmt: skip
        return None
    return session
