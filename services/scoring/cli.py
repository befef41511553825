"""``portfolio evaluate``: the stored scores (or the stored bars and predictions, scored again) as a table."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from shared.cli import EXIT_BAD_SETTINGS, settings_for


def main(argv: Sequence[str] | None = None) -> int:
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
    from services.scoring.tables import rows_from_metrics, rows_from_predictions, table
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
