"""The issue-20 benchmark's configurations (bench/sma_cross/run_user.py): the user path reads the
CLI's own defaults, and the realistic configuration really stops out, caps volume and slips."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "sma_cross"
sys.path.insert(0, str(BENCH))

import run_user  # noqa: E402

from tapeflow.backtest.engine import simulate  # noqa: E402
from tapeflow.model import AdjustMode  # noqa: E402


def test_cli_config_is_the_commands_defaults():
    defaults = run_user.cli_defaults()
    assert defaults == {"cash": 100_000.0, "costs": "retail-default", "adjust": AdjustMode.SPLITS}
    config = run_user.cli_config()
    assert config.buying_power_multiple == 1.0 and config.costs.participation == 0.10


def _bars() -> pl.DataFrame:
    """Flat at 100, a rise that crosses SMA10 over SMA30, then a fall through the 2% stop."""
    closes = [100.0] * 35 + [101.0, 102.0, 103.0] + [102.0, 100.5, 99.0, 98.0, 97.0] + [97.0] * 5
    opens = [closes[0], *closes[:-1]]
    start = datetime(2020, 1, 6, tzinfo=UTC)
    return pl.DataFrame({
        "symbol": "X", "ts": [start + timedelta(days=i) for i in range(len(closes))], "open": opens,
        "high": [max(o, c) + 0.25 for o, c in zip(opens, closes)],
        "low": [min(o, c) - 0.25 for o, c in zip(opens, closes)], "close": closes, "volume": 500.0,
    }).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")), (pl.col("ts") + timedelta(days=1)).alias("end_ts"))


@pytest.mark.slow  # the engine's compiled loop compiles on a first call
def test_realistic_config_stops_out_caps_and_slips():
    bars = _bars()
    signals = run_user.SmaCross(fast=10, slow=30, qty=100).signals(run_user.History(bars))
    market = simulate(bars, signals, run_user.config(0, 1))
    real = simulate(bars, signals, run_user.realistic_config(1))

    assert run_user.summary(market)["stop_fills"] == 0
    assert run_user.summary(real)["stop_fills"] == 1
    buys = real.fills.filter(pl.col("side") == "buy")
    # 10% of a 500-share bar; the DAY order's rest expires with the (daily) session
    assert buys["qty"].to_list() == [50.0]
    entry = float((buys["qty"] * buys["price"]).sum() / buys["qty"].sum())
    assert entry > float(market.fills.filter(pl.col("side") == "buy")["price"][0])  # liquidity slippage on top
    stop = real.fills.filter(pl.col("order_id").str.contains("-stop"))
    assert stop["qty"].sum() == 50  # the stop covers what the entry filled
    assert float(stop["price"].max()) <= entry * (1 - run_user.STOP_LOSS) + 1e-9
