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
    from services.scoring.tables import rows_from_frames, table
    from services.trainer.backtest import load_bars, run_backtest, write_predictions
    from services.trainer.forecaster.records import Config
    from services.trainer.model.network import set_threads

    set_threads(settings.trainer.torch_threads)
    tickers = [t.strip().upper() for t in args.tickers.split(",")] if args.tickers else None
    try:
        bars = load_bars(args.file, tickers)
    except (ValueError, OSError) as error:
        print(f"portfolio backtest: {error}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    result = run_backtest(bars, Config.from_settings(settings.trainer), args.cold_fraction, seed=args.seed)
    rows = rows_from_frames(result.closes, result.predictions, every_lineage=True)
    print(
        f"{bars['ticker'].nunique()} tickers, {len(bars):,} bars; "
        f"cold start on {result.cold_start_bars:,} bars "
        f"in {result.cold_seconds:.1f} s, walk-forward over the rest in {result.walk_seconds:.1f} s\n"
    )
    print(table(rows))
    if args.predictions:
        write_predictions(result.predictions, args.predictions)
        print(f"\nwrote {args.predictions} ({len(result.predictions):,} forecasts)")
    if args.out:
        from services.report.page import write_report

        write_report(args.out, result.closes, result.predictions, title=f"backtest of {args.file.name}")
        print(f"wrote {args.out}")
    return 0
