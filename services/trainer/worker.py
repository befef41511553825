"""The training thread: training cycles (cold start or warm update), scores to MongoDB, checkpoints.

It is the only thread that changes weights; it never blocks the polling thread (see ``forecaster.py``), and
gives way to it while a minute is being served (``serving/gate.py``).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, NoReturn, Self

from pymongo.database import Database
from pymongo.errors import PyMongoError
from tqdm import tqdm

from services.trainer.forecaster.core import Forecaster
from services.trainer.metrics import TrainerMetrics
from services.trainer.serving.gate import ServingGate
from services.trainer.stores.checkpoints import CheckpointStore, checkpoint_name
from services.trainer.stores.metrics_store import POOLED, lineage_scores, write_holdout, write_walk_forward
from shared.lifecycle import StopFlag
from shared.settings import Settings

logger = logging.getLogger(__name__)


class TrainingWorker(threading.Thread):
    """Runs the training cycles, writes scores and checkpoints; the only thread that changes weights."""

    def __init__(
        self,
        settings: Settings,
        forecaster: Forecaster,
        db: Database[dict[str, Any]],
        store: CheckpointStore,
        metrics: TrainerMetrics,
        stop: StopFlag,
        gate: ServingGate,
    ) -> None:
        super().__init__(name="trainer-worker", daemon=True)
        self.settings, self.forecaster, self.db, self.store = settings, forecaster, db, store
        self.metrics, self.stop, self.gate = metrics, stop, gate
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self._saved_version: str | None = None
        self._last_checkpoint = time.monotonic()

    def run(self) -> None:
        try:
            while not self.stop.wait(self.settings.common.download_period_s):
                self.cycle()
        except BaseException as exc:  # surfaced to run(), which re-raises
            self.error = exc
            logger.exception("training worker failed")
            self.stop.set()
        finally:
            self.finished.set()

    def cycle(self) -> None:
        started = time.perf_counter()
        with ColdStartProgress(self.forecaster, self.settings.trainer.max_epochs):
            report = self.forecaster.train_cycle(should_stop=self.stop.is_set)
        cold = report.cold_start
        if cold is not None and cold.fit is not None:
            self.metrics.training.labels("cold").observe(cold.fit.seconds)
        elif report.updated_tickers:
            self.metrics.training.labels("warm").observe(report.seconds)
        if cold is not None:
            s, ar = cold.pooled.summary(), cold.baseline.summary()
            logger.info(
                "hold-out model=%s tickers=%d joined=%s epochs=%s seconds=%.1f mse_ratio=%s cw_p=%s dm_p=%s "
                "verdict=%r mae=%s naive_mae=%s direction=%s (n=%s, 95%% CI %s-%s) "
                "ar_mse_ratio=%s ar_dm_p=%s",
                cold.model_version, len(cold.per_ticker), cold.joined, cold.fit.epochs if cold.fit else "-",
                cold.fit.seconds if cold.fit else 0.0, _fmt(s["mse_ratio"]), _fmt(s["cw_p"]), _fmt(s["dm_p"]),
                s["verdict"],
                _fmt(s["mae_model"]), _fmt(s["mae_naive"]), _fmt(s["directional_accuracy"]),
                s["directional_n"], _fmt(s["directional_ci_low"]), _fmt(s["directional_ci_high"]),
                _fmt(ar["mse_ratio"]), _fmt(ar["dm_p"]),
            )  # fmt: skip
            mode, target = self.settings.trainer.mode, self.settings.trainer.target
            self._write(lambda: write_holdout(self.db, cold, mode, target, pause=self.forecaster.pause))
        self.flush_scores()
        if time.monotonic() - self._last_checkpoint >= self.settings.trainer.checkpoint_interval_s:
            self.checkpoint()
        # The cycle's garbage, collected by the polling thread after its minute (serving/gate.py).
        self.gate.settle_later()
        self.metrics.cycle.observe(time.perf_counter() - started)
        logger.info(
            "cycle model=%s updated=%d loss=%s train_s=%.3f tickers=%d",
            report.model_version, report.updated_tickers, _fmt(report.loss), report.seconds,
            len(self.forecaster.series),
        )  # fmt: skip

    def flush_scores(self, everything: bool = False) -> None:
        forecaster = self.forecaster
        self.gate.give_way()
        self._write(lambda: write_walk_forward(self.db, forecaster, everything))
        if forecaster.lineage:
            lineage = forecaster.lineage
            pooled = lineage_scores(forecaster, {lineage}).pooled(lineage).summary()  # outside the lock
            if pooled["mse_ratio"] is not None:
                self.metrics.mse_ratio.set(float(pooled["mse_ratio"]))
                logger.info(
                    "walk-forward ticker=%s lineage=%s n=%s coverage=%s mse_ratio=%s cw_p=%s dm_p=%s "
                    "verdict=%r mae=%s naive_mae=%s direction=%s",
                    POOLED, forecaster.lineage, pooled["n"], _fmt(pooled["coverage"]),
                    _fmt(pooled["mse_ratio"]), _fmt(pooled["cw_p"]), _fmt(pooled["dm_p"]), pooled["verdict"],
                    _fmt(pooled["mae_model"]), _fmt(pooled["mae_naive"]),
                    _fmt(pooled["directional_accuracy"]),
                )  # fmt: skip

    def checkpoint(self) -> None:
        self._last_checkpoint = time.monotonic()
        self.gate.give_way()
        state = self.forecaster.state()
        if state is None or state["lineage"] + str(state["updates"]) == self._saved_version:
            return
        name = checkpoint_name(self.settings)
        if self._write(lambda: self.store.save(name, state)):
            self._saved_version = state["lineage"] + str(state["updates"])
            logger.info("checkpoint %s saved: model=%s", name, self.forecaster.model_version)

    def _write(self, action: Any) -> bool:
        # A database outage must not stop training or forecasting: the write is retried next cycle.
        try:
            action()
            return True
        except (PyMongoError, OSError) as exc:
            logger.warning("MongoDB write failed (%s: %s); retrying next cycle", type(exc).__name__, exc)
            return False


class ColdStartProgress:
    """A progress bar over cold-start epochs, on a terminal only (logs stay one line per event)."""

    def __init__(self, forecaster: Forecaster, max_epochs: int) -> None:
        self._forecaster = forecaster
        self._max_epochs = max_epochs
        self._bar: tqdm[NoReturn] | None = None

    def __enter__(self) -> Self:
        if sys.stderr.isatty():
            self._forecaster.on_epoch = self._on_epoch
        return self

    def _on_epoch(self, epoch: int, holdout_loss: float) -> None:
        if self._bar is None:
            self._bar = tqdm(total=self._max_epochs, desc="cold training", unit="epoch", leave=False)
        self._bar.update(1)
        self._bar.set_postfix(holdout_loss=f"{holdout_loss:.4g}")

    def __exit__(self, *exc: object) -> None:
        self._forecaster.on_epoch = None
        if self._bar is not None:
            self._bar.close()


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def finish_worker(worker: TrainingWorker) -> None:
    """On the way out: let the worker end its step, then write what is owed (scores, a last checkpoint)."""
    worker.stop.set()
    worker.finished.wait(timeout=120)
    if worker.error is None:
        worker.flush_scores(everything=True)
        worker.checkpoint()
