"""The one scorer: relative errors, running sums that equal a batch, the Diebold-Mariano test, coverage."""

from __future__ import annotations

import numpy as np
import pytest

from services.scoring.panel import OPEN_MINUTES, MinutePanel, ScorePanels
from services.scoring.score import Score, pool
from services.scoring.significance import dm_test
from services.scoring.walk_forward import Pending, WalkForward


def walk(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    closes = 100 * np.exp(np.cumsum(0.001 * rng.standard_normal(n + 1)))
    return closes[:-1], closes[1:]


def test_scoring_one_forecast_at_a_time_equals_scoring_them_all_at_once() -> None:
    last, actual = walk(300)
    forecast = last * (1 + 0.0005 * np.random.default_rng(3).standard_normal(300))
    batch, single = Score(), Score()
    batch.add(last, forecast, actual)
    for i in range(300):
        single.add(last[i : i + 1], forecast[i : i + 1], actual[i : i + 1])
    assert single.summary() == pytest.approx(batch.summary()) or single.summary() == batch.summary()
    assert single.lagged == pytest.approx(batch.lagged)


def test_a_forecast_close_to_the_truth_beats_naive_and_noise_does_not() -> None:
    last, actual = walk(2_000)
    good = Score()
    good.add(last, actual + 0.3 * (last - actual), actual)  # error 30% of naive's
    assert good.mse_ratio == pytest.approx(0.09)
    assert good.beats_naive() and good.verdict() == "beats naive"
    noisy = Score()
    noisy.add(last, last * (1 + 1e-6 * np.random.default_rng(5).standard_normal(2_000)), actual)
    _, p = noisy.clark_west()
    assert p is not None and p > 0.05
    assert not noisy.beats_naive() and noisy.verdict() == "no different from naive"
    wild = Score()  # a forecast ten times as far from the truth as naive, in the wrong direction
    wild.add(last, last - 10 * (actual - last), actual)
    assert wild.verdict() == "worse than naive" and not wild.beats_naive()


def test_errors_are_relative_so_a_pool_is_not_dominated_by_the_priciest_ticker() -> None:
    cheap, dear = Score(), Score()
    cheap.add(np.array([10.0]), np.array([10.1]), np.array([10.0]))
    dear.add(np.array([1000.0]), np.array([1010.0]), np.array([1000.0]))
    assert cheap.sse_model == pytest.approx(dear.sse_model)
    assert pool([cheap, dear], ScorePanels()).n == 2


def test_coverage_counts_naive_stand_ins_which_are_never_scored_as_the_models() -> None:
    score = Score(standins=1)
    score.add(np.array([10.0, 10.0, 10.0]), np.array([10.1, 10.1, 10.1]), np.array([10.2, 10.0, 9.9]))
    assert score.n == 3 and score.coverage == pytest.approx(0.75)


def test_nothing_scored_reads_not_yet_and_an_old_checkpoint_score_loads() -> None:
    assert Score().summary()["mse_ratio"] is None and Score().verdict() == "not yet"
    old: dict[str, object] = {
        "n": 2,
        "sse_model": 1.0,
        "sse_naive": 2.0,
        "sae_model": 1.0,
        "sae_naive": 1.0,
        "moves": 1,
        "hits": 1,
    }
    assert Score.from_state(old).mse_ratio == 0.5


def test_the_pooled_test_counts_tickers_that_move_together_as_one_observation_per_minute() -> None:
    # Ten tickers with the very same relative errors every minute carry the evidence of one ticker: the
    # pooled p-value must equal the single ticker's, not shrink as if there were ten times the data.
    rng = np.random.default_rng(11)
    last = 100 * np.exp(np.cumsum(0.001 * rng.standard_normal(600)))
    actual = last * (1 + 0.001 * rng.standard_normal(600))
    forecast = last + 0.03 * (actual - last) + last * 0.0005 * rng.standard_normal(600)
    one = Score()
    one.add(last, forecast, actual)
    walk = WalkForward()
    for t in range(10):  # ticker by ticker, not minute by minute: the panel still groups by minute
        for i in range(600):
            walk.add(f"T{t}", Pending(float(last[i]), float(forecast[i]), "lin", "v"), float(actual[i]), i)
    pooled = walk.pooled("lin")
    _, p_one = one.diebold_mariano()
    _, p_pool = pooled.diebold_mariano()
    assert pooled.n == 6_000 and p_one is not None and p_pool == pytest.approx(p_one, rel=1e-6)
    independent = dm_test(pooled.n, pooled.sse_model - pooled.sse_naive, pooled.sum_d2, pooled.lagged)[1]
    assert independent is not None and independent < p_one / 10  # what pooling them as independent claims


def test_the_running_panel_equals_the_per_minute_series_however_the_forecasts_arrive() -> None:
    rng = np.random.default_rng(4)
    d = rng.standard_normal((3, 1_500)) + 0.1
    panel = MinutePanel()
    # Tickers' forecasts arrive out of minute order, as long as none is OPEN_MINUTES behind the newest.
    arrivals = [(m + rng.uniform(0, 50), t, m) for t in range(3) for m in range(1_500)]
    for i, (_, t, m) in enumerate(sorted(arrivals)):
        if i == len(arrivals) // 2:  # a checkpoint and a resume mid-stream change nothing
            panel = MinutePanel.from_state(panel.state())
        panel.add(m, float(d[t, m]))
        assert max(panel.open) - min(panel.open) <= OPEN_MINUTES  # older minutes are folded in, in order
    series = d.sum(axis=0)
    lagged = [float(series[k:] @ series[:-k]) for k in range(1, 11)]
    stat, p = dm_test(len(series), float(series.sum()), float(series @ series), lagged)
    got = MinutePanel.from_state(panel.state()).test()
    assert got[0] == pytest.approx(stat, rel=1e-9) and got[1] == pytest.approx(p, rel=1e-9)


def test_a_checkpoints_panel_from_before_clark_west_loads_as_the_dm_series() -> None:
    old = MinutePanel()
    for m in range(20):
        old.add(m, 0.1 * m)
    panels = ScorePanels.from_state(old.state())
    assert panels.dm_test() == old.test()
    assert panels.clark_west() == (None, None)  # no terms yet: the test covers the minutes from here on
    again = ScorePanels.from_state(panels.state())
    assert again.dm.state() == panels.dm.state() and again.cw.state() == panels.cw.state()
