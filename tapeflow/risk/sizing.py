"""How many shares an entry buys: a slice of equity, or what risking a set share of equity
down to the stop allows, within buying power and a position cap.

The backtest engine and the live session call the same rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Sizing:
    """Each entry gets `fraction` of equity, at most `max_positions` held at once; with
    `risk_per_trade` (e.g. 0.005) and a stop, no more than that share of equity is lost if the
    stop is hit, whichever is smaller."""

    fraction: float = 0.10
    max_positions: int = 10
    risk_per_trade: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ValueError("fraction must be within (0, 1]")
        if self.max_positions < 1:
            raise ValueError("max_positions must be >= 1")
        if self.risk_per_trade is not None and not 0 < self.risk_per_trade < 1:
            raise ValueError("risk_per_trade must be within (0, 1), e.g. 0.005")

    def shares(self, *, equity: float, buying_power: float, price: float | None, open_positions: int,
               stop_distance: float | None = None) -> int:
        """Whole shares to buy at about `price` (losing `stop_distance` a share at the stop);
        0 when full, broke or the price is unknown."""
        if price is None or not math.isfinite(price) or price <= 0 or open_positions >= self.max_positions:
            return 0
        budget = min(self.fraction * equity, buying_power)
        shares = math.floor(budget / price)
        if self.risk_per_trade is not None and stop_distance:
            shares = min(shares, math.floor(self.risk_per_trade * equity / stop_distance))
        return max(0, shares)
