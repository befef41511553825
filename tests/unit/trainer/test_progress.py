from __future__ import annotations

import numpy as np

from services.trainer.model import ForecastLSTM
from services.trainer.training import fit, make_optimizer


def test_fit_reports_every_epoch_with_its_holdout_loss() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 10, 1)).astype(np.float32)
    y = rng.normal(size=(64, 1)).astype(np.float32)
    model = ForecastLSTM(1, 4, 1)
    seen: list[tuple[int, float]] = []
    report = fit(
        model, make_optimizer(model, 1e-3), x[:48], y[:48], x[48:], y[48:],
        max_epochs=3, patience=None, batch_size=16, on_epoch=lambda e, loss: seen.append((e, loss)),
    )  # fmt: skip
    assert [epoch for epoch, _ in seen] == [1, 2, 3]
    assert [loss for _, loss in seen] == report.holdout_losses
