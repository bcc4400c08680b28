"""The look-ahead check: a strategy's decisions must not change when the future is removed.

For random cut points t, the decisions taken at or before t on the full history must equal
the decisions the strategy takes on the history cut at t (only what was knowable then).
Any difference means a decision used something from after its own time. A strategy that
decides nothing on the history gives nothing to compare: that is reported as not passed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from tapeflow.backtest.adjust import adjusted_signals, price_actions
from tapeflow.model import AdjustMode
from tapeflow.strategy.history import History


@dataclass(frozen=True)
class Mismatch:
    cut: datetime
    full: pl.DataFrame  # decisions at or before the cut, from the full history
    truncated: pl.DataFrame  # decisions from the history cut at the cut


@dataclass(frozen=True)
class LookaheadReport:
    strategy: str
    cuts: tuple[datetime, ...]
    mismatches: tuple[Mismatch, ...]
    decisions: int  # on the full history

    @property
    def passed(self) -> bool:
        """No decision changed, and there were decisions to compare."""
        return self.decisions > 0 and not self.mismatches

    def summary(self) -> str:
        if self.mismatches:
            first = self.mismatches[0]
            return (
                f"{self.strategy}: LOOK-AHEAD at {len(self.mismatches)} of {len(self.cuts)} cut points; first at "
                f"{first.cut.isoformat()}: {first.full.height} decisions with the future, {first.truncated.height} without"
            )
        if self.decisions == 0:
            return (
                f"{self.strategy}: NO DECISIONS on this history, so the check compared nothing and proves nothing; "
                "give it a longer window, other symbols or other parameters"
            )
        return f"{self.strategy}: no look-ahead found at {len(self.cuts)} cut points ({self.decisions} decisions)"


def cut_points(history: History, n: int, seed: int = 0) -> list[datetime]:
    """n distinct bar ends, chosen at random but reproducibly, plus the last one."""
    ends = history.bars["end_ts"].unique().sort().to_list()
    if not ends:
        return []
    chosen = random.Random(seed).sample(ends, min(n, len(ends)))
    return sorted(set(chosen) | {ends[-1]})


def check_lookahead(strategy, history: History, n: int = 20, seed: int = 0,
                    adjust: AdjustMode = AdjustMode.RAW) -> LookaheadReport:
    """Compare full-history decisions with truncated-history decisions at `n` cut points; with
    `adjust`, on the prices a backtest in that mode decides on (the history's corporate actions,
    each from when it was in effect and known: a cut removes those not yet knowable)."""

    def decide(h: History) -> pl.DataFrame:
        return strategy.signals(h) if adjust is AdjustMode.RAW else adjusted_signals(strategy, h, price_actions(h, adjust))

    full = decide(history)
    cuts = cut_points(history, n, seed)
    mismatches = []
    for cut in cuts:
        expected = full.filter(pl.col("at") <= cut)
        # A decision stamped after the cut may be planned from what was known at the cut (an
        # exit scheduled at the entry): only decisions up to the cut are compared.
        got = decide(history.until(cut)).filter(pl.col("at") <= cut)
        if not expected.sort("at", "symbol", "action").equals(got.sort("at", "symbol", "action")):
            mismatches.append(Mismatch(cut, expected, got))
    return LookaheadReport(strategy.name, tuple(cuts), tuple(mismatches), full.height)
