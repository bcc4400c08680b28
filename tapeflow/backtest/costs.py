"""What trading costs: commissions and regulatory fees, slippage, tick rounding.

Defaults are zero so that every cost a report shows is one the user chose; `retail_costs()`
is a realistic starting point for US small caps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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
    """Adverse price move per side: a fixed number of basis points, or the small-cap model
    that charges 2% for names trading <= $1M a day, down to 0.5% for >= $50M (log-linear)."""

    bps: float = 0.0
    small_cap: bool = False
    thin_adv: float = 1e6
    thick_adv: float = 5e7
    thin_fraction: float = 0.02
    thick_fraction: float = 0.005

    def __post_init__(self) -> None:
        if self.bps < 0:
            raise ValueError("slippage bps must be >= 0")

    def fraction(self, adv_dollars: float | None) -> float:
        """The adverse fraction for a name with this average daily dollar volume."""
        if not self.small_cap:
            return self.bps / 10_000
        if adv_dollars is None or not math.isfinite(adv_dollars) or adv_dollars <= self.thin_adv:
            return self.thin_fraction  # unknown liquidity is priced as thin
        if adv_dollars >= self.thick_adv:
            return self.thick_fraction
        share = (math.log(adv_dollars) - math.log(self.thin_adv)) / (math.log(self.thick_adv) - math.log(self.thin_adv))
        return self.thin_fraction + share * (self.thick_fraction - self.thin_fraction)

    def apply(self, side: Side, price: float, fraction: float) -> float:
        return price * (1 + fraction) if side is Side.BUY else price * (1 - fraction)


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


def retail_costs() -> Costs:
    """IBKR-fixed-like commissions, SEC and TAF fees, the small-cap slippage model, ticks and
    a 10% volume cap: a sober default for small-cap momentum."""
    return Costs(
        commission=Commission(per_share=0.005, minimum=1.0, maximum_pct=0.01, sec_fee_rate=0.0000278, taf_per_share=0.000166),
        slippage=Slippage(small_cap=True),
        round_to_tick=True,
        participation=0.10,
    )


def cost_preset(name: str) -> Costs:
    """Named cost settings for flows and the CLI: retail (realistic small caps), flat-commission
    (the SMA benchmark's $0.005/share, $1 minimum), or none."""
    presets = {
        "retail": retail_costs,
        "flat-commission": lambda: Costs(commission=Commission(per_share=0.005, minimum=1.0)),
        "none": Costs,
    }
    try:
        return presets[name]()
    except KeyError:
        raise ValueError(f"unknown cost preset {name!r}; known: {', '.join(presets)}") from None
