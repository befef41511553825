"""The forecasting network: a stacked LSTM and a linear head. No I/O.

``per_stock``: one global model, input and output of width 1, tickers in the batch dimension (each
ticker keeps its own scaler, so prices of any size train together). ``portfolio``: input and output of
width = number of tickers, one multivariate model for the whole portfolio.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn


class ForecastLSTM(nn.Module):
    def __init__(self, columns: int, units: int, layers: int) -> None:
        super().__init__()
        self.columns, self.units, self.layers = columns, units, layers
        self.lstm = nn.LSTM(input_size=columns, hidden_size=units, num_layers=layers, batch_first=True)
        self.head = nn.Linear(units, columns)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        result: torch.Tensor = self.head(out[:, -1, :])
        return result

    def forward_all(self, x: torch.Tensor) -> torch.Tensor:
        """The forecast after every position of ``x`` [batch, steps, columns] (chunks.py)."""
        out, _ = self.lstm(x)
        result: torch.Tensor = self.head(out)
        return result

    def shape(self) -> dict[str, int]:
        return {"columns": self.columns, "units": self.units, "layers": self.layers}


def set_threads(threads: int) -> int:
    """Use ``threads`` intra-op threads (0: one per core); torch's default can oversubscribe containers.
    numpy's BLAS and any OpenMP pool get the same limit: left at one thread per core, the range model's
    least-squares fits at a cold start ran on every core, beside the minutes being served (issue 18)."""
    count = threads or os.cpu_count() or 1
    torch.set_num_threads(count)
    threadpool_limits(limits=count)
    return count


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Model outputs for windows ``x`` [n, window, columns] as a float32 array [n, columns]."""
    model.eval()
    if not len(x):
        return np.empty((0, x.shape[-1]), np.float32)
    outs = [model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch]))) for i in range(0, len(x), batch)]
    return torch.cat(outs).numpy()
