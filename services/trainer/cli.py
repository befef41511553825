"""``portfolio trainer`` and ``portfolio evaluate``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
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
