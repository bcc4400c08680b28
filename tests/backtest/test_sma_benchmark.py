"""The SMA-crossover benchmark's agreement check on small data: tapeflow's SmaCross +
simulate must reproduce the exact reference of shared/reference/bench/SMA_CROSS_RULES.md
fill for fill (bench/sma_cross/; the full-size run is bench/sma_cross/driver.py)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import polars as pl
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "sma_cross"
sys.path.insert(0, str(BENCH))

import datagen  # noqa: E402
import reference  # noqa: E402
import run_tapeflow  # noqa: E402
from common import Outcome, compare  # noqa: E402


def _agree(bars: pl.DataFrame, length: str, bps: int) -> tuple[dict, pl.DataFrame]:
    ref, ref_equity, _ = reference.check(bars, bps)  # the pure and the grid reference are identical
    got = run_tapeflow.backtest(run_tapeflow.with_ends(bars, length), bps)
    return compare(ref, ref_equity, got), ref


def _daily(closes: list[float], opens: list[float] | None = None) -> pl.DataFrame:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    opens = opens or [c + 0.5 for c in closes]
    return pl.DataFrame({
        "symbol": "X", "ts": [start + timedelta(days=i) for i in range(len(closes))],
        "open": opens, "high": [max(o, c) + 1 for o, c in zip(opens, closes)],
        "low": [min(o, c) - 1 for o, c in zip(opens, closes)], "close": closes, "volume": 1000.0,
    }).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))


def test_reference_tie_rules_by_hand():
    # Flat closes: fast == slow from t = 29 on (a tie). A higher close at t = 30 is "above"
    # after a tie: up[30] (rules §3), bought at bar 31's open. A lower close at t = 45 after
    # above: down, sold at bar 46's open. A signal on the last bar never fills.
    closes = [100.0] * 30 + [101.0] + [101.0] * 14 + [90.0] * 5
    fills, equity = reference.pure(_daily(closes), 10)
    bars = [(ts - fills[0][1]) // 86_400_000_000 + 31 for _, ts, _, _, _ in fills]
    assert [(b, side) for b, (_, _, side, _, _) in zip(bars, fills)] == [(31, "buy"), (46, "sell")]
    buy, sell = fills[0][4], fills[1][4]
    assert buy == Fraction("101.5") * Fraction(1001, 1000) and sell == Fraction("90.5") * Fraction(999, 1000)
    assert equity == 1_000_000 - 100 * buy - 1 + 100 * sell - 1
    # Open at the end: marked at the last close, no exit commission.
    fills, equity = reference.pure(_daily(closes[:40]), 0)
    assert len(fills) == 1 and equity == 1_000_000 - 100 * Fraction("101.5") - 1 + 100 * 101


@pytest.mark.parametrize("bps", [0, 10])
def test_tapeflow_agrees_on_hand_built_ties(bps):
    closes = [100.0] * 30 + [101.0] * 10 + [100.0] * 8 + [101.0] * 40 + [99.0] * 40
    verdict, ref = _agree(_daily(closes), "1d", bps)
    assert ref.height >= 3 and verdict["agrees"], verdict


@pytest.mark.parametrize("bps", [0, 10])
def test_tapeflow_agrees_on_20k_synthetic_minute_bars(bps):
    bars = datagen.synthetic_minute(2, 10_000, shape=9)
    assert reference.tie_stats(bars)["signals_after_tie"] > 0  # the tie rule is exercised
    verdict, ref = _agree(bars, "1m", bps)
    assert ref.height > 500 and verdict["agrees"], verdict


@pytest.mark.skipif(not datagen.SP_SOURCE.exists(), reason="shared/data (arch S&P 500) not beside the checkout")
def test_tapeflow_agrees_on_real_sp500_in_cents():
    verdict, ref = _agree(datagen.sp500(), "1d", 10)
    assert ref.height == 176 and verdict["agrees"], verdict


def test_compare_reports_the_first_differing_fill():
    bars = datagen.synthetic_minute(1, 3_000, shape=8)
    ref, ref_equity, _ = reference.check(bars, 0)
    moved = ref.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.col("price") + 1e-3)
                             .otherwise(pl.col("price")).alias("price"))
    verdict = compare(ref, ref_equity, Outcome(moved, float(ref_equity)))
    assert not verdict["agrees"] and verdict["first_difference"]["index"] == 3
    verdict = compare(ref, ref_equity, Outcome(ref, float(ref_equity) + 0.01))
    assert not verdict["agrees"] and verdict["equity_diff"] > 0.005
