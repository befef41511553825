"""The forecaster's checkpoint state: what a restart needs to forecast and keep learning without a cold start
(saved and loaded by ``checkpoints.py``). Carried LSTM states are derived, not saved: they re-prime. The held
series travel with it (``held_series.py``), and the range model with its carried rows: a restart reads only
the bars stored after them and forecasts as if it never stopped. A checkpoint written before they did
restores without them (the history is then read in full and the range model refitted, as before)."""

from __future__ import annotations

import copy
import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from services.scoring.panel import ScorePanels
from services.scoring.score import Score
from services.trainer.forecaster.held_series import copy_series, restore_series, series_state
from services.trainer.forecaster.horizons import fit_ranges
from services.trainer.intervals.calibration import Calibration
from services.trainer.intervals.range_state import RangeState
from services.trainer.model.ar_baseline import LinearAR
from services.trainer.model.scaling import scaler_from_state, scaler_to_state
from shared.settings import PORTFOLIO_SERIES

if TYPE_CHECKING:
    from services.trainer.forecaster.core import Forecaster

logger = logging.getLogger(__name__)


def state_of(forecaster: Forecaster) -> dict[str, Any] | None:
    """Everything a restart needs to forecast and keep learning without a cold start (torch objects
    inside: save with ``torch.save``). None before the first cold start. Copies are taken under the
    lock and turned into plain values outside it: the 2,000 tickers' scores take ~0.1 s to write out."""
    with forecaster.lock:
        if forecaster.trainee is None or forecaster.optimizer is None:
            return None
        state: dict[str, Any] = {
            "format": 1,
            "config": {
                "mode": forecaster.config.mode,
                "target": forecaster.config.target,
                "layers": forecaster.config.layers,
                "units": forecaster.config.units,
                "window": forecaster.config.window,
                "session": forecaster.config.session.name,
            },
            "columns": list(forecaster.columns),
            "model": copy.deepcopy(forecaster.trainee.state_dict()),
            "optimizer": copy.deepcopy(forecaster.optimizer.state_dict()),
            "scalers": {t: scaler_to_state(s) for t, s in forecaster.scalers.items()},
            "lineage": forecaster.lineage,
            "updates": forecaster.updates,
            # A string, not a datetime: torch.load(weights_only=True) accepts only plain types.
            "trained_at": forecaster.trained_at.isoformat() if forecaster.trained_at else None,
            "baseline": forecaster.baseline.state() if forecaster.baseline else None,
            "calibration": forecaster.calibration.state() if forecaster.calibration else None,
        }
        scores = forecaster.walk_forward.copy()
        held = copy_series(forecaster)
        ranges = forecaster.range_state
        if ranges is not None and forecaster.ranges_for == forecaster.lineage:
            state["ranges"] = ranges.state()
        if forecaster.portfolio_value is not None:
            state["portfolio_value"] = forecaster.portfolio_value.state()
    state["series"] = series_state(*held)
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


def restore(forecaster: Forecaster, state: dict[str, Any]) -> bool:
    """Resume from :func:`state_of`; False (and nothing changed) when it was saved for another shape."""
    config = state.get("config", {})
    wanted = {
        "mode": forecaster.config.mode,
        "target": forecaster.config.target,
        "layers": forecaster.config.layers,
        "units": forecaster.config.units,
        "window": forecaster.config.window,
        "session": forecaster.config.session.name,
    }
    # Checkpoints written before the session was a setting were made on New York's clock.
    config = {"session": "XNYS", **config}
    if state.get("format") != 1 or config != wanted:
        logger.warning("checkpoint made for %s, not %s: ignored (cold start instead)", config, wanted)
        return False
    columns = list(state["columns"])
    model, optimizer = forecaster.learner.new_network(forecaster.strategy.network_width(columns))
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    with forecaster.lock:
        forecaster.columns = columns
        forecaster.scalers = {t: scaler_from_state(s) for t, s in state["scalers"].items()}
        forecaster.trainee, forecaster.optimizer = model, optimizer
        forecaster.model = copy.deepcopy(model).eval()
        # States are derived: they re-prime from the series as bars come.
        forecaster.serving = forecaster.strategy.serving_for(forecaster.model)
        forecaster.lineage, forecaster.updates = state["lineage"], int(state["updates"])
        forecaster.trained_at = datetime.fromisoformat(state["trained_at"]) if state["trained_at"] else None
        forecaster.baseline = LinearAR.from_state(state["baseline"]) if state.get("baseline") else None
        saved = state.get("calibration")
        forecaster.calibration = Calibration.from_state(saved) if saved else None
        for item in state.get("walk_forward", []):
            key = (item["ticker"], item["lineage"])
            forecaster.walk_forward.scores[key] = Score.from_state(item["score"])
            if item.get("baseline"):
                forecaster.walk_forward.baseline[key] = Score.from_state(item["baseline"])
            if item.get("version"):
                forecaster.walk_forward.versions[key] = item["version"]
        # Absent in checkpoints written before: the pooled tests then cover minutes scored from here on.
        for lin, saved_panels in state.get("walk_forward_panels", {}).items():
            forecaster.walk_forward.panels[lin] = ScorePanels.from_state(saved_panels["model"])
            if saved_panels.get("baseline"):
                forecaster.walk_forward.baseline_panels[lin] = ScorePanels.from_state(
                    saved_panels["baseline"]
                )
        if state.get("series"):
            restore_series(forecaster, state["series"])
            _restore_portfolio(forecaster, state.get("portfolio_value"))
            if state.get("ranges"):
                forecaster.range_state = RangeState.from_state(state["ranges"])
                forecaster.ranges_for = forecaster.lineage
    if state.get("series") and not state.get("ranges"):
        # Fitted now, on the series as saved, not on them with the first bars after the restart.
        fit_ranges(forecaster)
    return True


def _restore_portfolio(forecaster: Forecaster, saved: dict[str, Any] | None) -> None:
    """The portfolio series' builder with its series (lock held). A series saved for other weights (or
    without its builder) is another portfolio's: dropped, and built again from the bars that come."""
    value = forecaster.portfolio_value
    if value is not None and value.restore(saved, time.monotonic()):
        return
    if PORTFOLIO_SERIES in forecaster.series:
        logger.info("checkpoint's %s series is of other weights: built again", PORTFOLIO_SERIES)
        forecaster.forget([PORTFOLIO_SERIES])
        forecaster.scalers.pop(PORTFOLIO_SERIES, None)


def reached(state: dict[str, Any]) -> int | None:
    """The data minute the checkpoint's series reach; None for a checkpoint without them."""
    saved = state.get("series")
    return int(saved["reached"]) if saved else None
