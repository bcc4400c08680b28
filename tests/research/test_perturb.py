"""Perturbation: a lone spike and a broad plateau where the answer is known by construction,
the edge cases of the rule, then SmaCross on the bundled S&P 500 panel."""

from __future__ import annotations

import math

import polars as pl
import pytest

from strategies.sma_cross import SmaCross
from tapeflow.backtest.config import BacktestConfig
from tapeflow.progress import Step, listening
from tapeflow.research.perturb import perturb
from tapeflow.strategy.history import History
from tests.research_kit import ALL_IN, EveryN, path_bars, spike_steps


def test_a_lone_rhythm_is_a_spike():
    # A +3% jump after every 10th bar, -1% on every other step: EveryN(10) catches every jump,
    # 8 and 12 (±20%) catch one in five and pay the losses.
    history = History(bars=path_bars(spike_steps(250)))
    p = perturb(EveryN, history, {"period": 10}, ALL_IN)
    assert p.verdict == "spike"
    (s,) = p.sensitivities
    assert (s.low_value, s.point_value, s.high_value) == (8, 10, 12)
    assert s.objective_point > 2 and s.objective_low < 0 and s.objective_high < 0
    assert s.worst_ratio == min(s.ratio_low, s.ratio_high) < 0
    assert "period=8 (-pct)" in p.reason and "period=12 (+pct)" in p.reason
    # The grid (8, 9, 11, 12 around 10): no neighbour passes either.
    assert p.runs.filter(pl.col("kind") == "grid")["period"].to_list() == [8, 9, 11, 12]
    assert p.grid_share == 0.0


def test_a_steady_drift_is_a_plateau():
    # Every step is a gain (0.2% .. 0.8%): whatever the period, every trade wins.
    history = History(bars=path_bars([0.005 + 0.003 * math.sin(j) for j in range(250)]))
    p = perturb(EveryN, history, {"period": 10}, ALL_IN)
    assert p.verdict == "plateau", p.reason
    (s,) = p.sensitivities
    assert s.worst_ratio >= 0.5 and s.objective_low > 0 and s.objective_high > 0
    assert p.grid_share == 1.0
    assert p.runs.filter(pl.col("kind") == "point")["objective"][0] == p.point_objective


def test_every_distinct_run_is_reported_once():
    history = History(bars=path_bars(spike_steps(120)))
    steps: list[Step] = []
    with listening(steps.append):
        p = perturb(EveryN, history, {"period": 10}, ALL_IN, grid_steps=1)
    told = [s for s in steps if s.work == "perturb every_n"]
    distinct = p.runs["period"].n_unique()  # 10, then 8 and 12 as neighbours, and again as the grid
    assert distinct == 3 < p.runs.height
    assert [(s.done, s.total) for s in told] == [(k, distinct) for k in range(distinct + 1)] + [(distinct, distinct)]
    assert [s.finished for s in told] == [False] * (distinct + 1) + [True]
    assert told[1].detail.startswith("the point: sharpe ") and told[2].detail.startswith("period=8: sharpe ")


def test_no_edge_and_the_ratio_rule_threshold():
    falling = History(bars=path_bars([-0.004 + 0.003 * math.sin(j) for j in range(150)]))
    p = perturb(EveryN, falling, {"period": 10}, ALL_IN)
    assert p.verdict == "no edge" and p.grid_share is None
    assert p.sensitivities[0].worst_ratio is None and p.runs["passes"].null_count() == p.runs.height
    # The same spike path judged with a threshold no neighbour can miss... still fails on sign.
    spiky = History(bars=path_bars(spike_steps(250)))
    assert perturb(EveryN, spiky, {"period": 10}, ALL_IN, min_ratio=-100.0).verdict == "spike"


def test_moves_that_round_back_clip_or_are_refused(panel):
    # fast=9, slow=10: +20% fast (11) and -20% slow (8) break fast < slow; qty held out.
    p = perturb(SmaCross, panel, {"fast": 9, "slow": 10}, BacktestConfig(), vary=["fast", "slow"], grid_steps=1)
    assert p.skipped[:2] == (
        "fast=11 (+pct): refused by the strategy: fast (11) must be shorter than slow (10)",
        "slow=8 (-pct): refused by the strategy: fast (9) must be shorter than slow (8)",
    )
    fast, slow = p.sensitivities
    assert (fast.low_value, fast.high_value, slow.low_value, slow.high_value) == (7, None, None, 12)
    assert "refused" in fast.note and "refused" in slow.note
    assert set(p.runs["kind"]) == {"point", "-pct", "+pct", "grid"} and "qty" not in set(p.runs["moved"])
    # fast=2 is at its range floor and 2 x 1.2 rounds back to 2: no neighbour either side.
    q = perturb(SmaCross, panel, {"fast": 2, "slow": 3}, BacktestConfig(), vary=["fast"], grid_steps=1)
    assert q.verdict == "untested" and q.point_objective > 0
    assert "no distinct value" in q.sensitivities[0].note and q.sensitivities[0].low_value is None
    with pytest.raises(ValueError, match="must be shorter"):
        perturb(SmaCross, panel, {"fast": 30, "slow": 20}, BacktestConfig())
    with pytest.raises(ValueError, match="no numeric parameter"):
        perturb(SmaCross, panel, {}, BacktestConfig(), vary=["speed"])


def test_sma_cross_on_the_bundled_panel(panel):
    p = perturb(SmaCross, panel, {"fast": 10, "slow": 30}, BacktestConfig())
    # SMA 10/30 over these 30 names, 2009-08 .. 2010-08, no costs, a cash account: a small
    # positive sharpe; no fast/slow neighbour keeps half of it. qty is a sizing knob: not moved.
    assert p.verdict == "spike", p.reason
    fast, slow = p.sensitivities
    assert 0 < p.point_objective < 0.5
    assert all(s.worst_ratio < 0.5 for s in (fast, slow))
    assert p.reason.startswith("4 of 4 neighbours fail")
    assert [(s.low_value, s.high_value) for s in p.sensitivities] == [(8, 12), (24, 36)]
    assert p.notes == ()
    assert p.runs.filter(pl.col("kind") == "grid").height == 24  # 5 x 5 around the point, less the point
    assert p.runs["total_return"].null_count() == 0
