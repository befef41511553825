"""Reference computations the trainer's fast paths are tested against (test oracles: not used in service)."""

from __future__ import annotations

import numpy as np
import torch

from services.trainer.model.network import ForecastLSTM


@torch.no_grad()
def full_pass(model: ForecastLSTM, inputs: np.ndarray) -> np.ndarray:
    """The network from zero over ``inputs`` [n, steps, features]; outputs [n, columns]: what every carried
    forecast must equal."""
    model.eval()
    return model(torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))).numpy()
