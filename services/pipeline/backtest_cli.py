"""``portfolio backtest``: the trainer's walk-forward backtest of a recording, scored by the one scorer, and
its HTML report. The one place the trainer and the report meet: neither imports the other."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from shared.cli import EXIT_BAD_SETTINGS, settings_for


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="portfolio backtest",
        description="Walk-forward backtest of a recording with the trainer's own code, offline (no Kafka, "
        "no database): cold start on the first part, then every bar forecast, scored and learned from as "
        "live. Prints the model against the naive and AR baselines. Model settings from PORTFOLIO_*.",
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
    import pandas as pd

    from services.scoring.tables import rows_from_frames, table
    from services.trainer.backtest import load_bars, normalized, run_backtest, write_predictions
    from services.trainer.forecaster.records import Config
    from services.trainer.intervals.range_grid import portfolio_closes
    from services.trainer.intervals.range_state import TRAIN_SHARE
    from services.trainer.intervals.range_table import format_table, horizon_table
    from services.trainer.model.network import set_threads
    from shared.settings import PORTFOLIO_SERIES

    set_threads(settings.trainer.torch_threads)
    tickers = [t.strip().upper() for t in args.tickers.split(",")] if args.tickers else None
    try:
        bars = load_bars(args.file, tickers)
    except (ValueError, OSError) as error:
        print(f"portfolio backtest: {error}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    try:
        portfolio = portfolio_closes(bars, settings.trainer.weights or None)
    except ValueError as error:
        print(f"portfolio backtest: PORTFOLIO_WEIGHTS: {error}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    bars = normalized(pd.concat([bars, portfolio.assign(final=True, rev=0)], ignore_index=True))
    config = Config.from_settings(settings.trainer)
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
          f"{PORTFOLIO_SERIES}: the portfolio's value)")  # fmt: skip
    print(format_table(horizon_table(bars, result.predictions, result.boundary, config.horizons)))
    if args.predictions:
        write_predictions(result.predictions, args.predictions)
        print(f"\nwrote {args.predictions} ({len(result.predictions):,} forecasts)")
    if args.out:
        from services.report.page import write_report

        write_report(args.out, closes, one, title=f"backtest of {args.file.name}")
        print(f"wrote {args.out}")
    return 0
