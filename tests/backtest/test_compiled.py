"""The compiled event loop (tapeflow/backtest/kernel.py) against the Python one it compiles:
the same fills to the last bit and the same outcomes, on random bars, decisions and configs,
on every branch (sizing, slots, caps, buying power, stops, the breaker and its flatten,
time exits, limits and stops, partial fills, liquidity slippage, ticks)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tapeflow.backtest.compiled import supports
from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import cost_preset
from tapeflow.backtest.engine import _walk_signals, simulate
from tapeflow.model import Outcome, Timeframe
from tapeflow.risk.policy import ExecutionPolicy, Halt, Sizing
from tapeflow.strategy.base import signal_frame
from tests.backtest.test_engine import (
    D1,
    PROPERTY,
    configs,
    minutes,
    ny,
    random_bars,
    random_signals,
    sig,
)
from tests.reference_engine import reference_backtest

NO_STEPS = pl.DataFrame(schema={"symbol": pl.String, "ex_start": pl.Datetime("us", "UTC"), "scale": pl.Float64})


def compiled_signals(rng: random.Random, bars: pl.DataFrame, n: int) -> pl.DataFrame:
    """Random decisions the compiled loop takes: market, limit and stop orders, DAY or GTC."""
    signals = random_signals(rng, bars, n)
    tifs = [tif if tif in ("day", "gtc") else rng.choice(["day", "gtc"]) for tif in signals["time_in_force"].to_list()]
    return signals.with_columns(pl.Series("time_in_force", tifs, dtype=pl.String))


def assert_same_as_python(bars: pl.DataFrame, signals: pl.DataFrame, config: BacktestConfig, timeframe: Timeframe) -> None:
    assert supports(signals, NO_STEPS)
    result = simulate(bars, signals, config, timeframe=timeframe)
    fills, outcomes, _ = _walk_signals(bars, signals.sort("at", maintain_order=True), config, timeframe, ())
    assert_frame_equal(result.fills, fills, check_exact=True)
    assert result.decisions["outcome"].to_list() == outcomes


@pytest.mark.slow
@settings(PROPERTY, max_examples=150)
@given(seed=st.integers(0, 2**32), timeframe=st.sampled_from(["daily", "minute", "mixed"]), n_symbols=st.integers(1, 3),
       n_signals=st.integers(0, 30), config=configs(), flatten=st.booleans(), exit_minutes=st.sampled_from([None, 5, 30]))
def test_compiled_loop_equals_the_python_loop(seed, timeframe, n_symbols, n_signals, config, flatten, exit_minutes):
    rng = random.Random(seed)
    bars = random_bars(rng, timeframe, max(n_symbols, 2) if timeframe == "mixed" else n_symbols)
    signals = compiled_signals(rng, bars, n_signals)
    policy = replace(config.policy, flatten_on_breaker=flatten,
                     exit_before_close=None if exit_minutes is None else timedelta(minutes=exit_minutes))
    config = replace(config, policy=policy)
    # minute decisions bring the policy's time exit; daily ones do not
    assert_same_as_python(bars, signals, config, Timeframe.MINUTE if timeframe != "daily" else Timeframe.DAY)


@pytest.mark.slow
@settings(PROPERTY, max_examples=40)
@given(seed=st.integers(0, 2**32), n_symbols=st.integers(1, 3), n_signals=st.integers(0, 25), config=configs())
def test_compiled_loop_agrees_with_the_reference(seed, n_symbols, n_signals, config):
    from tests.backtest.test_engine import assert_agree, check_invariants

    rng = random.Random(seed)
    bars = random_bars(rng, "minute", n_symbols)
    signals = compiled_signals(rng, bars, n_signals)
    result = simulate(bars, signals, config)
    assert_agree(result, reference_backtest(bars, signals, config))
    check_invariants(bars, signals, config, result)


def test_the_cli_defaults_with_stops_partial_fills_and_time_exits_match_the_python_loop():
    """A day of minute bars under the CLI's costs (liquidity slippage, ticks, a 10% volume cap)
    and the default policy with a 1% stop: entries sized by equity, partial fills, a stop
    that triggers, and the time exit that flattens before the close."""
    rng = random.Random(7)
    prices, rows = 20.0, []
    for _ in range(390):
        o = round(prices, 2)
        c = round(o * (1 + rng.gauss(0, 0.004)), 2)
        rows.append((o, round(max(o, c) * 1.002, 2), round(min(o, c) * 0.998, 2), c, float(rng.randint(50, 3000))))
        prices = c
    bars = minutes("A", ny(D1, 9, 30), rows)
    decisions = []
    for minute in range(5, 360, 20):
        decisions.append(sig("A", ny(D1, 9, 30) + timedelta(minutes=minute)))  # sized by the policy
        decisions.append(sig("A", ny(D1, 9, 30) + timedelta(minutes=minute + 12), "exit"))
    decisions.append(sig("A", ny(D1, 15, 52)))  # held into the time exit
    decisions.append(sig("A", ny(D1, 9, 31), qty=500.0, order_type="limit", limit_price=19.9, time_in_force="gtc"))
    config = BacktestConfig(costs=cost_preset("retail-default"), policy=ExecutionPolicy(stop_loss_pct=0.01,
                                                                                       daily_loss_limit_pct=0.05))
    signals = signal_frame(decisions)
    assert_same_as_python(bars, signals, config, Timeframe.MINUTE)
    result = simulate(bars, signals, config, timeframe=Timeframe.MINUTE)
    ids = result.fills["order_id"].to_list()
    assert any(i.split("-")[2] == "stop" for i in ids)  # a stop filled
    assert any(i.endswith("-flat") for i in ids)  # the time exit sold what was left
    assert result.fills.group_by("order_id").len()["len"].max() > 1  # an order filled over several bars
    assert Outcome.BUSY in result.decisions["outcome"].to_list()


def test_what_the_compiled_loop_leaves_to_the_python_loop():
    at = ny(D1, 9, 31)
    assert supports(signal_frame([sig("A", at, qty=10.0)]), NO_STEPS)
    assert supports(signal_frame([sig("A", at, order_type="stop", stop_price=9.0)]), NO_STEPS)
    assert not supports(signal_frame([sig("A", at, qty=10.0, time_in_force="opg")]), NO_STEPS)
    assert not supports(signal_frame([sig("A", at, qty=10.0, time_in_force="cls")]), NO_STEPS)
    steps = pl.DataFrame({"symbol": ["A"], "ex_start": [at], "scale": [2.0]})
    assert not supports(signal_frame([sig("A", at, qty=10.0)]), steps)  # corporate-action units
    # the kill switch stays with the Python loop, and still answers
    bars = minutes("A", ny(D1, 9, 30), [(10, 10, 10, 10, 1000)] * 3)
    halted = simulate(bars, signal_frame([sig("A", at, qty=10.0)]), BacktestConfig(policy=ExecutionPolicy(
        sizing=Sizing()), buying_power_multiple=None), halts=[Halt(ny(D1, 9, 30), None, "manual")])
    assert halted.decisions["outcome"][0].startswith(Outcome.ENTRIES_STOPPED)
