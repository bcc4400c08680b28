"""What trading costs: commissions and regulatory fees, slippage, tick rounding.

Defaults are zero so that every cost a report shows is one the user chose; `retail_default_costs()`
is a realistic starting point, its slippage set by each name's liquidity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tapeflow.backtest.slippage import BY_LIQUIDITY, LARGE_CAP, LIQUID_ETF, SMALL_CAP, LiquidityModel, tick
from tapeflow.model import Side


@dataclass(frozen=True)
class Commission:
    """Broker commission per order, plus the SEC fee and FINRA TAF on sells."""

    per_share: float = 0.0
    per_order: float = 0.0
    minimum: float = 0.0  # per order
    maximum_pct: float | None = None  # cap as a fraction of the order's value (IBKR: 1%)
    sec_fee_rate: float = 0.0  # on sell proceeds, e.g. 0.0000278
    taf_per_share: float = 0.0  # on shares sold, e.g. 0.000166
    taf_maximum: float = 8.30

    def __post_init__(self) -> None:
        for name in ("per_share", "per_order", "minimum", "sec_fee_rate", "taf_per_share", "taf_maximum"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    def commission(self, qty: float, value: float) -> float:
        """Commission for an order of `qty` shares worth `value` (all its fills together)."""
        return float(self.commissions(np.array([qty], dtype=float), np.array([value], dtype=float))[0])

    def fees(self, side: Side, qty: float, value: float) -> float:
        """Regulatory fees: sells only."""
        return float(self.sell_fees(np.array([side is Side.SELL]), np.array([qty], dtype=float),
                                    np.array([value], dtype=float))[0])

    def commissions(self, qty: np.ndarray, value: np.ndarray) -> np.ndarray:
        """`commission` for many orders at once."""
        fee = np.maximum(self.per_share * qty + self.per_order, self.minimum)
        if self.maximum_pct is not None:
            fee = np.minimum(fee, self.maximum_pct * value)
        return np.where(qty > 0, fee, 0.0)

    def sell_fees(self, sell: np.ndarray, qty: np.ndarray, value: np.ndarray) -> np.ndarray:
        """`fees` for many orders at once; `sell` marks the sells."""
        fee = self.sec_fee_rate * value + np.minimum(self.taf_per_share * qty, self.taf_maximum)
        return np.where(sell & (qty > 0), fee, 0.0)


@dataclass(frozen=True)
class Slippage:
    """Adverse price move per side: a fixed number of basis points, or a liquidity `model`
    (half-spread plus square-root impact, at least a tick: tapeflow/backtest/slippage.py)."""

    bps: float = 0.0
    model: LiquidityModel | None = None

    def __post_init__(self) -> None:
        if self.bps < 0:
            raise ValueError("slippage bps must be >= 0")

    def fraction(self, order_dollars: float = 0.0, adv_dollars: float | None = None,
                 sigma_daily: float | None = None) -> float:
        """The adverse fraction for a fill of `order_dollars` in a name of this ADV and volatility."""
        if self.model is None:
            return self.bps / 10_000
        return self.model.fraction(order_dollars, adv_dollars, sigma_daily)

    def apply(self, side: Side, price: float, fraction: float) -> float:
        return price * (1 + fraction) if side is Side.BUY else price * (1 - fraction)

    def fill_price(self, side: Side, reference: float, qty: float, adv_dollars: float | None = None,
                   sigma_daily: float | None = None, scale: float = 1.0) -> float:
        """`reference` moved against the trader; a model moves it at least one tick of the traded
        price (`reference / scale`: the engine may book adjusted units)."""
        fraction = self.fraction(abs(qty * reference), adv_dollars, sigma_daily)
        if self.model is None:
            return self.apply(side, reference, fraction)
        move = max(reference * fraction, tick(reference / scale) * scale)
        return reference + move if side is Side.BUY else reference - move

    def describe(self) -> str:
        """The slippage a report states."""
        return f"{self.bps:g} bps per side" if self.model is None else self.model.describe()


@dataclass(frozen=True)
class Costs:
    """Everything a fill pays, and how much of a bar's volume an order may take."""

    commission: Commission = Commission()
    slippage: Slippage = Slippage()
    round_to_tick: bool = False
    participation: float | None = None  # e.g. 0.10: at most 10% of a bar's volume per bar

    def __post_init__(self) -> None:
        if self.participation is not None and not 0 < self.participation <= 1:
            raise ValueError("participation must be within (0, 1]")


def retail_default_costs(model: LiquidityModel = BY_LIQUIDITY) -> Costs:
    """IBKR-fixed-like commissions, SEC and TAF fees, tick rounding, a 10% volume cap and the
    liquidity model (by each name's measured liquidity unless a class `model` is given)."""
    return Costs(
        commission=Commission(per_share=0.005, minimum=1.0, maximum_pct=0.01, sec_fee_rate=0.0000278, taf_per_share=0.000166),
        slippage=Slippage(model=model),
        round_to_tick=True,
        participation=0.10,
    )


PRESETS: dict[str, Callable[[], Costs]] = {
    "retail-default": retail_default_costs,
    "liquid-etf": lambda: retail_default_costs(LIQUID_ETF),
    "large-cap": lambda: retail_default_costs(LARGE_CAP),
    "small-cap": lambda: retail_default_costs(SMALL_CAP),
    "flat-commission": lambda: Costs(commission=Commission(per_share=0.005, minimum=1.0)),
    "none": Costs,
}


def cost_preset(name: str) -> Costs:
    """Named cost settings for flows and the CLI: retail-default (slippage by each name's
    liquidity), liquid-etf, large-cap, small-cap (the same with a class's spread and volatility),
    flat-commission (the SMA benchmark's $0.005/share, $1 minimum), or none."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown cost preset {name!r}; known: {', '.join(PRESETS)}") from None
