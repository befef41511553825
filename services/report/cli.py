"""``portfolio report``: render actual closes, predictions and the scores against naive from MongoDB.

By default the span shown ends at the newest stored bar (data time, not the wall clock)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.cli import EXIT_BAD_SETTINGS, settings_for
from shared.mongo import database, make_client


def _utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portfolio report", description=__doc__)
    parser.add_argument(
        "--tickers", help="comma-separated tickers (default: the portfolio in PORTFOLIO_TICKERS)"
    )
    parser.add_argument("--since", type=_utc, help="start, ISO-8601 (default: --hours before --until)")
    parser.add_argument("--until", type=_utc, help="end, ISO-8601 (default: the newest stored bar)")
    parser.add_argument(
        "--hours", type=float, default=6.0, help="length of the range when --since is not given"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("reports/report.html"), help="an .html or a .png file"
    )
    args = parser.parse_args(argv)
    settings = settings_for("report")
    if settings is None:
        return EXIT_BAD_SETTINGS
    # matplotlib and pandas load only for this command.
    from services.report.page import write_report
    from services.scoring import stored as data
    from shared.layout import newest_bar_time

    tickers = (
        [t.strip().upper() for t in args.tickers.split(",")]
        if args.tickers
        else list(settings.common.tickers)
    )
    with make_client(settings) as client:
        db = database(client, settings)
        until = args.until or newest_bar_time(db, tickers)
        if until is None:
            print(f"portfolio report: no bars for {', '.join(tickers)} in {settings.mongo.db}.bars",
                  file=sys.stderr)  # fmt: skip
            return 1
        since = args.since or until - timedelta(hours=args.hours)
        closes = data.load_closes(db, tickers, since, until)
        predictions = data.load_predictions(db, tickers, since, until)
        wide = data.load_portfolio(db, since, until)
    shown = [t for t in tickers if t in set(closes["ticker"])]
    if not shown:
        print(
            f"portfolio report: no bars for {', '.join(tickers)} between {since:%Y-%m-%d %H:%M} and "
            f"{until:%Y-%m-%d %H:%M} UTC in {settings.mongo.db}.bars",
            file=sys.stderr,
        )
        return 1
    scored = write_report(
        args.out, closes, predictions, title=f"portfol.io report: {', '.join(shown)}", tickers=shown,
        wide=wide if args.tickers is None else None,
    )  # fmt: skip
    print(f"wrote {args.out} ({len(shown)} tickers, {len(closes)} bars, {scored} scored predictions)")
    return 0
