"""``portfolio report``: render actual closes, predictions and the error against naive from MongoDB."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.cli import EXIT_BAD_SETTINGS, settings_for
from shared.mongo import database, make_client


def _utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portfolio report", description=__doc__)
    parser.add_argument(
        "--tickers", help="comma-separated tickers (default: the portfolio in PORTFOLIO_TICKERS)"
    )
    parser.add_argument("--since", type=_utc, help="start, ISO-8601 (default: --hours before --until)")
    parser.add_argument("--until", type=_utc, help="end, ISO-8601 (default: now)")
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
    from services.report import data, render
    from services.report.scoring import score_predictions

    tickers = [t.strip().upper() for t in args.tickers.split(",")] if args.tickers else list(settings.tickers)
    until = args.until or datetime.now(UTC)
    since = args.since or until - timedelta(hours=args.hours)
    with make_client(settings) as client:
        db = database(client, settings)
        closes = data.load_closes(db, tickers, since, until)
        predictions = data.load_predictions(db, tickers, since, until)
        wide = data.load_portfolio(db, since, until)
    shown = [t for t in tickers if t in set(closes["ticker"])]
    if not shown:
        print(
            f"portfolio report: no bars for {', '.join(tickers)} between {since:%Y-%m-%d %H:%M} and "
            f"{until:%Y-%m-%d %H:%M} UTC in {settings.mongodb_db}.bars",
            file=sys.stderr,
        )
        return 1
    scored = score_predictions(closes, predictions)
    charts = []
    if not wide.empty and args.tickers is None:
        charts.append(render.png(render.draw_portfolio(wide[[c for c in wide.columns if c in shown]])))
    charts.append(render.png(render.draw(closes, predictions, scored, shown)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix.lower() == ".png":
        args.out.write_bytes(charts[-1])
    else:
        page = render.html_page(
            title=f"portfol.io report: {', '.join(shown)}",
            since=since,
            until=until,
            charts=charts,
            scored=scored,
            counts={"bars": len(closes), "predictions": len(predictions), "scored": len(scored)},
        )
        args.out.write_text(page, encoding="utf-8")
    print(f"wrote {args.out} ({len(shown)} tickers, {len(closes)} bars, {len(scored)} scored predictions)")
    return 0
