"""Carried state: stepping bar by bar gives what one full pass of the network over the returns from the
anchor gives (float rounding), across anchors, filled minutes, provisional bars and re-priming."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from services.trainer.model.network import ForecastLSTM
from services.trainer.serving.stream import CarriedStates, Primer, Request, anchor_of
from tests.unit.trainer.oracles import full_pass

WINDOW = 10


def network() -> ForecastLSTM:
    torch.manual_seed(3)
    return ForecastLSTM(1, 8, 2)


def returns(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1)).astype(np.float32)


def reference(model: ForecastLSTM, r: np.ndarray, count: int) -> float:
    return float(full_pass(model, r[anchor_of(count, WINDOW) : count][None])[0, 0])


def test_stepping_bar_by_bar_equals_a_full_pass_from_the_anchor() -> None:
    model, r = network(), returns(47)
    states = CarriedStates(model, WINDOW)
    states.prime({"A": Primer(0, 0, 1.0, r[:0])})
    for k in range(len(r)):
        out = states.step([Request("A", r[k : k + 1], k + 1, 1.0, store=True)])
        if k + 1 < WINDOW:
            assert out == {}
        else:
            assert out["A"] == pytest.approx(reference(model, r, k + 1), abs=1e-5), k


def test_a_provisional_bar_is_forecast_without_advancing_and_filled_minutes_step_together() -> None:
    model, r = network(), returns(40, seed=1)
    states = CarriedStates(model, WINDOW)
    states.prime({"A": Primer(0, 19, 1.0, r[:19])})
    provisional = states.step([Request("A", np.array([[5.0]], np.float32), 20, 1.0, store=False)])
    assert states.states["A"].minute == 19
    final = states.step([Request("A", r[19:22], 22, 1.0, store=True)])  # two filled minutes, then a bar
    assert states.states["A"].minute == 22
    assert final["A"] == pytest.approx(reference(model, r, 22), abs=1e-5)
    assert provisional["A"] != pytest.approx(final["A"])


def test_priming_many_tickers_of_any_length_equals_stepping_them() -> None:
    model = network()
    series = {f"T{i}": returns(n, seed=i) for i, n in enumerate([9, 10, 19, 20, 21, 35])}
    primed = CarriedStates(model, WINDOW)
    primed.prime({t: Primer(0, len(r), 1.0, r) for t, r in series.items()})
    nxt = {t: returns(1, seed=100 + i) for i, t in enumerate(series)}
    out = primed.step([Request(t, nxt[t], len(series[t]) + 1, 1.0, store=True) for t in series])
    for t, r in series.items():
        full = np.concatenate([r, nxt[t]])
        if len(full) >= WINDOW:
            assert out[t] == pytest.approx(reference(model, full, len(full)), abs=1e-5), t
        else:
            assert t not in out


def test_rows_grow_and_are_reused_without_mixing_states() -> None:
    model = network()
    states = CarriedStates(model, WINDOW, rows=4)
    series = {f"T{i}": returns(12 + i % 9, seed=i) for i in range(11)}  # more tickers than rows: doubling
    states.prime({t: Primer(0, len(r), 1.0, r) for t, r in series.items()})
    for t in ["T0", "T3", "T7"]:  # a cut or a revoked partition frees the row; new tickers take them
        del states.states[t]
        series.pop(t)
    for i in range(11, 14):
        series[f"T{i}"] = returns(15, seed=i)
        states.prime({f"T{i}": Primer(0, 15, 1.0, series[f"T{i}"])})
    assert len({s.row for s in states.states.values()}) == len(states.states) == 11
    nxt = {t: returns(1, seed=200 + i) for i, t in enumerate(series)}
    out = states.step([Request(t, nxt[t], len(series[t]) + 1, 1.0, store=True) for t in series])
    for t, r in series.items():
        full = np.concatenate([r, nxt[t]])
        assert out[t] == pytest.approx(reference(model, full, len(full)), abs=1e-5), t
