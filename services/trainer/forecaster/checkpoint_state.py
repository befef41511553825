"""The forecaster's checkpoint state: what a restart needs to forecast and keep learning without a cold start
(saved and loaded by ``checkpoints.py``). Carried LSTM states are derived, not saved: they re-prime."""

from __future__ import annotations

import copy
import logging
from datetime import datetime
from typing import Any

from services.scoring.panel import MinutePanel
from services.scoring.score import Score
from services.trainer.forecaster.fields import ForecasterFields
from services.trainer.intervals.calibration import Calibration
from services.trainer.model.ar_baseline import LinearAR
from services.trainer.model.scaling import scaler_from_state, scaler_to_state
from services.trainer.serving.per_stock import PerStockServing

logger = logging.getLogger(__name__)


class CheckpointState(ForecasterFields):
    def state(self) -> dict[str, Any] | None:
        """Everything a restart needs to forecast and keep learning without a cold start (torch objects
        inside: save with ``torch.save``). None before the first cold start. Copies are taken under the
        lock and turned into plain values outside it: the 2,000 tickers' scores take ~0.1 s to write out."""
        with self.lock:
            if self._trainee is None or self._optimizer is None:
                return None
            state: dict[str, Any] = {
                "format": 1,
                "config": {
                    "mode": self.config.mode,
                    "target": self.config.target,
                    "layers": self.config.layers,
                    "units": self.config.units,
                    "window": self.config.window,
                },
                "columns": list(self.columns),
                "model": copy.deepcopy(self._trainee.state_dict()),
                "optimizer": copy.deepcopy(self._optimizer.state_dict()),
                "scalers": {t: scaler_to_state(s) for t, s in self.scalers.items()},
                "lineage": self.lineage,
                "updates": self.updates,
                # A string, not a datetime: torch.load(weights_only=True) accepts only plain types.
                "trained_at": self.trained_at.isoformat() if self.trained_at else None,
                "baseline": self.baseline.state() if self.baseline else None,
                "calibration": self.calibration.state() if self.calibration else None,
            }
            scores = self.walk_forward.copy()
        state["walk_forward"] = [
            {
                "ticker": t,
                "lineage": lin,
                "score": s.state(),
                "baseline": scores.baseline[(t, lin)].state() if (t, lin) in scores.baseline else None,
                "version": scores.versions.get((t, lin)),
            }
            for (t, lin), s in scores.scores.items()
        ]
        # The pooled tests' per-minute series (panel.py), per lineage.
        state["walk_forward_panels"] = {
            lin: {"model": p.state(), "baseline": b.state() if b is not None else None}
            for lin, p in scores.panels.items()
            for b in [scores.baseline_panels.get(lin)]
        }
        return state

    def restore(self, state: dict[str, Any]) -> bool:
        """Resume from :meth:`state`; False (and nothing changed) when it was saved for another shape."""
        config = state.get("config", {})
        wanted = {
            "mode": self.config.mode,
            "target": self.config.target,
            "layers": self.config.layers,
            "units": self.config.units,
            "window": self.config.window,
        }
        if state.get("format") != 1 or config != wanted:
            logger.warning("checkpoint made for %s, not %s: ignored (cold start instead)", config, wanted)
            return False
        columns = list(state["columns"])
        model, optimizer = self._new_network(len(columns) if self.config.mode == "portfolio" else 1)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        with self.lock:
            self.columns = columns
            self.scalers = {t: scaler_from_state(s) for t, s in state["scalers"].items()}
            self._trainee, self._optimizer = model, optimizer
            self._model = copy.deepcopy(model).eval()
            if self.config.mode == "per_stock":
                # States are derived: they re-prime from the series as bars come.
                self._serving = PerStockServing(self._model, self.config.window, self.config.ffill_max)
            self.lineage, self.updates = state["lineage"], int(state["updates"])
            self.trained_at = datetime.fromisoformat(state["trained_at"]) if state["trained_at"] else None
            self.baseline = LinearAR.from_state(state["baseline"]) if state.get("baseline") else None
            saved = state.get("calibration")
            self.calibration = Calibration.from_state(saved) if saved else None
            for item in state.get("walk_forward", []):
                key = (item["ticker"], item["lineage"])
                self.walk_forward.scores[key] = Score.from_state(item["score"])
                if item.get("baseline"):
                    self.walk_forward.baseline[key] = Score.from_state(item["baseline"])
                if item.get("version"):
                    self.walk_forward.versions[key] = item["version"]
            # Absent in checkpoints written before: the pooled tests then cover minutes scored from here on.
            for lin, saved_panels in state.get("walk_forward_panels", {}).items():
                self.walk_forward.panels[lin] = MinutePanel.from_state(saved_panels["model"])
                if saved_panels.get("baseline"):
                    self.walk_forward.baseline_panels[lin] = MinutePanel.from_state(saved_panels["baseline"])
        return True
