"""``portfolio trainer`` and ``portfolio evaluate``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.cli import EXIT_BAD_SETTINGS, run_service, settings_for
from shared.lifecycle import StopFlag
from shared.settings import Settings


def _app(settings: Settings, stop: StopFlag) -> None:
    from services.trainer.app import run  # torch is imported only when the service runs

    run(settings, stop)


def main(argv: Sequence[str] | None = None) -> int:
    return run_service("trainer", "train the LSTM on the stream and publish predictions", argv, _app)


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="portfolio evaluate",
        description="Print the model against the naive forecast (next close = last close), per ticker. "
        "By default from the trainer's walk-forward scores in the metrics collection; with "
        "--from-predictions, recomputed from the stored bars and predictions.",
    )
    parser.add_argument("--from-predictions", action="store_true", help="score bars + predictions")
    parser.add_argument("--lineage", help="only this model lineage (default: every lineage)")
    parser.add_argument("--holdout", action="store_true", help="the cold starts' 20%% hold-out scores")
    args = parser.parse_args(argv)
    settings = settings_for("evaluate")
    if settings is None:
        return EXIT_BAD_SETTINGS
    from services.trainer.report import rows_from_metrics, rows_from_predictions, table
    from shared.mongo import database, make_client

    with make_client(settings) as client:
        db = database(client, settings)
        rows: list[dict[str, Any]]
        if args.from_predictions:
            rows = rows_from_predictions(db, args.lineage)
        else:
            rows = rows_from_metrics(db, "holdout" if args.holdout else "walk_forward", args.lineage)
    print(table(rows))
    return 0


def backtest_main(argv: Sequence[str] | None = None) -> int:
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
    from services.trainer.backtest import load_bars, run_backtest, write_predictions
    from services.trainer.forecaster import Config
    from services.trainer.model import set_threads
    from services.trainer.report import rows_from_frames, table

    set_threads(settings.torch_threads)
    tickers = [t.strip().upper() for t in args.tickers.split(",")] if args.tickers else None
    try:
        bars = load_bars(args.file, tickers)
    except (ValueError, OSError) as error:
        print(f"portfolio backtest: {error}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    result = run_backtest(bars, Config.from_settings(settings), args.cold_fraction, seed=args.seed)
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
