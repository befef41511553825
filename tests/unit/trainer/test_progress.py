from __future__ import annotations

import numpy as np

from services.trainer.model.network import ForecastLSTM
from services.trainer.model.training import fit, make_optimizer
from services.trainer.model.windows import prepare


def test_fit_reports_every_epoch_with_its_holdout_loss() -> None:
    rng = np.random.default_rng(0)
    closes = 100 * np.exp(np.cumsum(0.001 * rng.normal(size=120)))
    prepared = prepare([closes[:, None]], 10, "return")
    assert prepared is not None
    model = ForecastLSTM(1, 4, 1)
    seen: list[tuple[int, float]] = []
    report = fit(
        model, make_optimizer(model, 1e-3), prepared.train, prepared.holdout, window=10,
        max_epochs=3, patience=None, batch_size=16, on_epoch=lambda e, loss: seen.append((e, loss)),
    )  # fmt: skip
    assert [epoch for epoch, _ in seen] == [1, 2, 3]
    assert [loss for _, loss in seen] == report.holdout_losses
