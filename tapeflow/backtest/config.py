"""What besides the strategy decides a backtest's numbers: cash, costs, the execution policy
and the account's buying power."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from tapeflow.backtest.costs import Costs
from tapeflow.model import AdjustMode
from tapeflow.risk.policy import DEFAULT_POLICY, ExecutionPolicy


@dataclass(frozen=True)
class BacktestConfig:
    """Everything besides the strategy that decides a backtest's numbers."""

    cash: float = 100_000.0
    costs: Costs = field(default_factory=Costs)
    policy: ExecutionPolicy = DEFAULT_POLICY  # the rules sessions run with too
    # Buying power = equity x this - positions held - buys still working: 1 is a cash
    # account (the simulated broker's), 2 Reg-T margin; None never checks (the SMA benchmark's rules).
    buying_power_multiple: float | None = 1.0
    # Prices a strategy decides on and positions are booked in (tapeflow/backtest/adjust.py).
    adjust: AdjustMode = AdjustMode.SPLITS

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cash) and self.cash > 0):
            raise ValueError(f"cash must be a finite positive amount, got {self.cash}")

    def describe(self) -> dict[str, object]:
        return {"cash": self.cash, "costs": asdict(self.costs), "policy": self.policy.describe(),
                "buying_power_multiple": self.buying_power_multiple, "adjust": self.adjust.value}
