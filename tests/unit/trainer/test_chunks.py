"""Chunks (consecutive windows read as one sequence) forecast every window once, from the same context the
carried states serve from."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from services.trainer.model.chunks import chunk, chunk_loss, predict_windows
from services.trainer.model.network import ForecastLSTM
from services.trainer.model.windows import Examples, prepare, scale
from services.trainer.serving.stream import anchor_of
from tests.unit.trainer.oracles import full_pass
from tests.unit.trainer.synthetic import sine_closes

WINDOW = 10


def segments() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    # A long segment, a short one (fewer windows than a chunk holds) and one just over a chunk.
    return [100 * np.exp(np.cumsum(0.001 * rng.normal(size=(n, 1)), axis=0)) for n in (137, 15, 32)]


@pytest.mark.parametrize("phase", [0, 3, WINDOW - 1])
def test_every_window_is_forecast_once_from_a_context_that_ends_with_it(phase: int) -> None:
    prepared = prepare(segments(), WINDOW, "return")
    assert prepared is not None
    for examples in (prepared.train, prepared.holdout):
        chunks = chunk(examples, WINDOW, phase)
        assert sorted(chunks.index[chunks.mask]) == list(range(len(examples)))
        for row, position in zip(*np.nonzero(chunks.mask), strict=True):
            i = chunks.index[row, position]
            np.testing.assert_array_equal(chunks.x[row, position - WINDOW + 1 : position + 1], examples.x[i])
            assert chunks.y[row, position, 0] == examples.y[i, 0]
        assert chunks.targets.max() <= WINDOW and chunks.x.shape[1] == 2 * WINDOW - 1


def test_predictions_equal_the_served_full_pass_from_the_anchor() -> None:
    closes = sine_closes(200)[:, None]
    prepared = prepare([closes], WINDOW, "return")
    assert prepared is not None
    torch.manual_seed(0)
    model = ForecastLSTM(1, 8, 2).eval()
    out = predict_windows(model, prepared.train, WINDOW)
    values = scale(closes, prepared.scalers)
    for i in range(len(prepared.train)):
        start = anchor_of(i + WINDOW, WINDOW)  # what stream.py reads from after i + WINDOW returns
        expected = full_pass(model, values[None, start : i + WINDOW])[0, 0]
        assert out[i, 0] == pytest.approx(float(expected), rel=1e-5, abs=1e-7), i


def test_the_loss_is_the_mean_squared_error_of_the_windows() -> None:
    prepared = prepare(segments(), WINDOW, "return")
    assert prepared is not None
    torch.manual_seed(0)
    model = ForecastLSTM(1, 8, 2).eval()
    examples: Examples = prepared.train
    with torch.no_grad():
        loss = float(chunk_loss(model, chunk(examples, WINDOW)))
    expected = np.mean((predict_windows(model, examples, WINDOW) - examples.y) ** 2)
    assert loss == pytest.approx(float(expected), rel=1e-5)
