"""The trainer's scores in MongoDB's ``metrics`` collection (walk-forward and hold-out); read back by
``services.scoring.stored.read_metrics``.

Documents (every number plain: FerretDB rejects NaN, so a score not yet defined is null):

* ``{"kind": "walk_forward", "ticker": "AAPL" | "*", "lineage", "model_version" (the newest scored),
  "mode", "target", n, mse_ratio, mse_model, mse_naive, mae_model, mae_naive, directional_accuracy,
  directional_n, directional_ci_low, directional_ci_high, "updated_at"}``: one per (ticker, lineage),
  upserted as forecasts are scored; ``ticker="*"`` is the pooled score of the lineage.
* ``{"kind": "holdout", "ticker": ..., "lineage", "model_version", "epochs", "train_seconds", ...the same
  score fields, "created_at"}``: the 20% hold-out at each cold start (and when a ticker joins a model).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pymongo.database import Database

from services.scoring.score import POOLED, Score
from services.scoring.walk_forward import WalkForward
from services.trainer.forecaster.core import Forecaster
from services.trainer.forecaster.records import HoldoutResult
from services.trainer.intervals.horizon_ranges import no_pause
from shared.mongo import METRICS

logger = logging.getLogger(__name__)

__all__ = ["POOLED", "write_holdout", "write_walk_forward"]


def baseline_fields(baseline: Score | None) -> dict[str, Any]:
    """The AR baseline's figures beside the model's, on the same minutes."""
    summary = (baseline or Score()).summary()
    return {
        f"ar_{k}": summary[k] for k in ("n", "mse_ratio", "cw_p", "dm_p", "mae_model", "directional_accuracy")
    }


def _walk_forward_doc(
    ticker: str, lineage: str, version: str | None, score: Score, baseline: Score | None
) -> dict[str, Any]:
    return {
        "kind": "walk_forward",
        "ticker": ticker,
        "lineage": lineage,
        "model_version": version,
        **score.summary(),
        **baseline_fields(baseline),
        "updated_at": datetime.now(UTC),
    }


# Per-ticker rows written at most this many at a time, those changed longest ago first (the pooled rows every
# time): a row's summary holds the GIL ~0.2 ms, and 2,000 of them in one cycle held up the polling thread's
# forecasts of that minute by ~0.2 s (issue 12). At 2,000 tickers a row is then ~100 s old at most.
ROWS_PER_WRITE = 200


def walk_forward_documents(
    forecaster: Forecaster, limit: int | None = None
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Documents of up to ``limit`` (all when None) scores that changed since they were last taken, and the
    pooled rows of their lineages.

    The keys taken are removed from the forecaster's changed set: on a failed write, put them back with
    :func:`requeue` with the keys returned."""
    with forecaster.lock:
        wf = forecaster.walk_forward
        dirty = list(itertools.islice(wf.dirty, limit))
        for key in dirty:
            del wf.dirty[key]
        lineages = {lin for _, lin in dirty}
    copied = lineage_scores(forecaster, lineages)
    versions = copied.versions
    docs = []
    for t, lin in dirty:
        forecaster.pause()  # a row's summary holds the interpreter ~0.2 ms
        docs.append(
            _walk_forward_doc(
                t, lin, versions.get((t, lin)), copied.scores[(t, lin)], copied.baseline.get((t, lin))
            )
        )
    for lineage in lineages:
        version = max(
            (v for (_, lin), v in versions.items() if lin == lineage),
            key=lambda v: int(v.rsplit(".", 1)[-1]),
            default=None,
        )
        docs.append(
            _walk_forward_doc(
                POOLED, lineage, version, copied.pooled(lineage), copied.pooled_baseline(lineage)
            )
        )  # fmt: skip
    mode, target = forecaster.config.mode, forecaster.config.target
    return [d | {"mode": mode, "target": target} for d in docs], dirty


def lineage_scores(forecaster: Forecaster, lineages: set[str]) -> WalkForward:
    """A copy of the walk-forward scores (model, AR baseline, versions, pooled tests' panels) of ``lineages``,
    taken under the lock and summarized outside it (:meth:`WalkForward.copy`)."""
    with forecaster.lock:
        return forecaster.walk_forward.copy(lineages)


def requeue(forecaster: Forecaster, keys: list[tuple[str, str]]) -> None:
    with forecaster.lock:
        forecaster.walk_forward.dirty.update(dict.fromkeys(keys))


def replace_rows(db: Database[dict[str, Any]], kind: str, key: str, docs: list[dict[str, Any]]) -> None:
    """Replace the ``kind`` rows that share ``key`` (a lineage, a model version) and a ticker with ``docs``:
    one delete and one insert per key, not an upsert per row. On FerretDB every update scans the whole
    collection (FIELD-NOTES; measured 139 ms an upsert at 4,000 rows), so 2,000 tickers' upserts kept
    its server busy ~5 minutes a cycle, on the cores the polling thread needs; the delete and the insert
    take ~0.5 s. A reader between the two misses the rows being replaced for that moment. Idempotent: after
    a failure the whole call is repeated (FerretDB stops a batch at its first error)."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for d in docs:
        groups.setdefault(d[key], []).append(d)
    for value, rows in groups.items():
        tickers = sorted({d["ticker"] for d in rows})
        db[METRICS].delete_many({"kind": kind, key: value, "ticker": {"$in": tickers}})
        db[METRICS].insert_many([dict(d) for d in rows], ordered=False)  # copies: insert adds an _id


def write_walk_forward(db: Database[dict[str, Any]], forecaster: Forecaster, everything: bool = False) -> int:
    """Write changed walk-forward scores, :data:`ROWS_PER_WRITE` at most unless ``everything`` (a stop); the
    whole batch is written again next time on failure."""
    docs, keys = walk_forward_documents(forecaster, None if everything else ROWS_PER_WRITE)
    if not docs:
        return 0
    try:
        replace_rows(db, "walk_forward", "lineage", docs)
    except Exception:
        requeue(forecaster, keys)
        raise
    return len(docs)


def holdout_documents(
    result: HoldoutResult, mode: str, target: str, pause: Callable[[], None] = no_pause
) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    fit = result.fit
    common: dict[str, Any] = {
        "kind": "holdout",
        "lineage": result.lineage,
        "model_version": result.model_version,
        "mode": mode,
        "target": target,
        "epochs": fit.epochs if fit else None,
        "best_epoch": fit.best_epoch if fit else None,
        "train_seconds": round(fit.seconds, 3) if fit else None,
        "created_at": now,
    }
    docs = []
    for t, s in result.per_ticker.items():
        pause()  # a row's summary holds the interpreter ~0.2 ms: 2,000 of them, a minute's forecasts
        docs.append(common | {"ticker": t} | s.summary())
    if not result.joined:
        # A join scores only the joining tickers: it must not replace the cold start's pooled row.
        docs.append(common | {"ticker": POOLED} | result.pooled.summary() | baseline_fields(result.baseline))
    return docs


def write_holdout(
    db: Database[dict[str, Any]],
    result: HoldoutResult,
    mode: str,
    target: str,
    pause: Callable[[], None] = no_pause,
) -> None:
    # Replaced per (ticker, model_version): a retried write does not duplicate rows.
    replace_rows(db, "holdout", "model_version", holdout_documents(result, mode, target, pause))
