"""What besides the strategy decides a backtest's numbers: cash, costs, sizing and the risk rules."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tapeflow.backtest.costs import Costs
from tapeflow.risk.sizing import Sizing


@dataclass(frozen=True)
class BacktestConfig:
    """Everything besides the strategy that decides a backtest's numbers."""

    cash: float = 100_000.0
    costs: Costs = Costs()
    sizing: Sizing = Sizing()
    stop_loss_pct: float | None = None  # protective sell stop this far under each entry fill
    # e.g. 0.02: no new entries that session once equity is 2% under where the session (its
    # New York day) started
    daily_loss_limit_pct: float | None = None
    # Buying power = equity x this - positions held - buys still working: 1 is a cash
    # account, 2 Reg-T margin; None never checks (the SMA benchmark's rules).
    buying_power_multiple: float | None = 1.0

    def describe(self) -> dict[str, object]:
        return asdict(self)
