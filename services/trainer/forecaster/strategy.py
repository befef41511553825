"""What a forecasting mode does its own way (:class:`Strategy`), chosen once when the forecaster is built.

``per_stock``: one global network, tickers in the batch dimension, forecasts from carried states.
``portfolio``: one multivariate network over every ticker's closes on the aligned minute grid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from services.trainer.forecaster.records import HoldoutResult
    from services.trainer.model.network import ForecastLSTM
    from services.trainer.model.windows import Examples
    from services.trainer.serving.per_stock import PerStockServing

# A model forecast: (based-on minute, last close, forecast close, AR baseline's close or None).
ModelForecast = tuple[int, float, float, float | None]


class Primed(Protocol):
    """Carried states computed for new weights off the lock; :meth:`adopt` (under it) returns them."""

    def adopt(self) -> PerStockServing: ...


class Strategy(Protocol):
    def forecast(self, tickers: list[str]) -> dict[str, ModelForecast]:
        """The model's forecast for each of ``tickers`` it can serve (lock held)."""
        ...

    def intervals(self, yhats: dict[str, float]) -> dict[str, tuple[float, float] | None]:
        """The 80% interval of the next close around each forecast (lock held); {} where there is none."""
        ...

    def cold_start(self, retrain: bool, should_stop: Callable[[], bool] | None) -> HoldoutResult | None:
        """Train new weights (a cold start, or a join) if this cycle calls for it; None otherwise."""
        ...

    def newest_windows(self, need: int, count: int) -> tuple[Examples, dict[str, int]]:
        """A warm update's windows and the change counts they cover (lock held)."""
        ...

    def network_width(self, columns: list[str]) -> int:
        """The network's input columns for a model over ``columns``."""
        ...

    def holdout_columns(self, key: str) -> list[str]:
        """The tickers a prepared hold-out part (keyed as the strategy prepared it) holds."""
        ...

    def output_offset(self, ticker: str) -> float:
        """What is subtracted from the network's output for ``ticker`` (see calibration.py)."""
        ...

    def served_after(self, prepared: dict[str, Any]) -> set[str]:
        """The tickers a new model just made forecastable (forecast again at once)."""
        ...

    def prime(self, model: ForecastLSTM) -> Primed | None:
        """Carried states for ``model`` (training thread, off the lock); None where none are carried."""
        ...

    def serving_for(self, model: ForecastLSTM) -> PerStockServing | None:
        """Fresh (unprimed) serving for restored weights; states re-prime as bars come."""
        ...
