"""How many shares an entry buys: a slice of equity, within buying power and a position cap.

The backtest engine and the live session call the same rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Sizing:
    """Each entry gets `fraction` of equity, at most `max_positions` held at once."""

    fraction: float = 0.10
    max_positions: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ValueError("fraction must be within (0, 1]")
        if self.max_positions < 1:
            raise ValueError("max_positions must be >= 1")

    def shares(self, *, equity: float, buying_power: float, price: float | None, open_positions: int) -> int:
        """Whole shares to buy at about `price`; 0 when full, broke or the price is unknown."""
        if price is None or not math.isfinite(price) or price <= 0 or open_positions >= self.max_positions:
            return 0
        budget = min(self.fraction * equity, buying_power)
        return max(0, math.floor(budget / price))
