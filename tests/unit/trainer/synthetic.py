"""Small series and tiny models so the trainer's unit tests run in seconds on a busy 2-core machine."""

from __future__ import annotations

import numpy as np

from services.trainer.forecaster.records import Config


def tiny_config(**overrides: object) -> Config:
    values: dict[str, object] = {
        "layers": 1,
        "units": 8,
        "window": 10,
        "max_epochs": 40,
        "patience": 4,
        "batch_size": 64,
        "learning_rate": 5e-3,
        "history": 3_000,
        "update_steps": 2,  # the trainer's tests exercise warm updates (off by default)
    }
    return Config(**(values | overrides))  # type: ignore[arg-type]


def sine_closes(n: int, seed: int = 1, period: int = 12, noise: float = 0.0003) -> np.ndarray:
    """Closes whose log returns are a sine plus a little noise: learnable, and naive cannot follow it."""
    rng = np.random.default_rng(seed)
    returns = 0.002 * np.sin(np.arange(n) * 2 * np.pi / period) + noise * rng.standard_normal(n)
    return 100 * np.exp(np.cumsum(returns))


def random_walk_closes(n: int, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 50 * np.exp(np.cumsum(0.001 * rng.standard_normal(n)))
