"""What a fill pays to the market, per side: half the bid-ask spread plus market impact.

cost = half_spread(ADV) + Y * sigma_daily * sqrt(order dollars / ADV dollars), as a fraction of
the price, and never less than one tick ($0.01; $0.0001 under $1) on the price.

- Half-spread: interpolated linearly in log(ADV) between SPREAD_ANCHORS ($1M: 60 bp, $10M: 15 bp,
  $100M: 4 bp, $1B: 1 bp), flat beyond the ends.
- Impact: the square-root law, Y ~ 1 (Almgren, Thum, Hauptmann & Li 2005, "Direct estimation of
  equity market impact"; Toth et al. 2011, "Anomalous price impact and the critical nature of
  liquidity"). Each fill is priced as an order of its own size; order / ADV is capped at 1.
- ADV and sigma_daily are measured on the sessions before the fill's (tapeflow/backtest/liquidity.py);
  a name with no history is priced at `fallback_adv` (thin, for the by-liquidity model), and a
  sigma the data cannot give is `fallback_sigma`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# (ADV in dollars, half-spread in basis points): effective half-spreads of US equities, from
# SPY-like names (a cent on a $100+ price) down to sub-$1M micro caps.
SPREAD_ANCHORS: tuple[tuple[float, float], ...] = ((1e6, 60.0), (1e7, 15.0), (1e8, 4.0), (1e9, 1.0))
THIN_ADV = SPREAD_ANCHORS[0][0]


def tick(price: float) -> float:
    """The US equity tick at `price` (Reg NMS: $0.01, $0.0001 under $1), as `tick_round` uses."""
    return 0.01 if price >= 1 else 0.0001


@dataclass(frozen=True)
class LiquidityModel:
    """Half-spread plus square-root impact; `half_spread_bps` fixes a class's spread, else it
    follows each name's ADV along `anchors`."""

    label: str
    half_spread_bps: float | None = None
    fallback_adv: float = THIN_ADV  # ADV assumed for a name without history
    fallback_sigma: float = 0.04  # daily volatility assumed where the data gives none
    impact_y: float = 1.0
    anchors: tuple[tuple[float, float], ...] = SPREAD_ANCHORS

    def __post_init__(self) -> None:
        advs = [a for a, _ in self.anchors]
        if not advs or advs != sorted(advs) or min(advs) <= 0 or any(b < 0 for _, b in self.anchors):
            raise ValueError("anchors must be (ADV > 0, bps >= 0) pairs in increasing ADV")
        if not (self.fallback_adv > 0 and self.fallback_sigma >= 0 and self.impact_y >= 0):
            raise ValueError("fallback_adv must be > 0, fallback_sigma and impact_y >= 0")
        if self.half_spread_bps is not None and self.half_spread_bps < 0:
            raise ValueError("half_spread_bps must be >= 0")

    def half_spread(self, adv_dollars: float | None) -> float:
        """Half the spread as a fraction of the price, for a name trading `adv_dollars` a day."""
        if self.half_spread_bps is not None:
            return self.half_spread_bps / 10_000
        adv = self._adv(adv_dollars)
        (lo_adv, lo_bps), (hi_adv, hi_bps) = self.anchors[0], self.anchors[-1]
        if adv <= lo_adv:
            return lo_bps / 10_000
        if adv >= hi_adv:
            return hi_bps / 10_000
        for (a0, b0), (a1, b1) in zip(self.anchors, self.anchors[1:]):
            if adv <= a1:
                share = (math.log(adv) - math.log(a0)) / (math.log(a1) - math.log(a0))
                return (b0 + share * (b1 - b0)) / 10_000
        raise AssertionError("unreachable: adv lies within the anchors")

    def impact(self, order_dollars: float, adv_dollars: float | None, sigma_daily: float | None) -> float:
        """Square-root impact, Y * sigma * sqrt(order / ADV), as a fraction of the price."""
        sigma = sigma_daily if sigma_daily is not None and math.isfinite(sigma_daily) else self.fallback_sigma
        # The law is measured on orders up to a fraction of a day's volume: beyond one day's, the
        # ratio stops growing (the volume cap keeps fills far below it anyway).
        participation = min(max(order_dollars, 0.0) / self._adv(adv_dollars), 1.0)
        return self.impact_y * sigma * math.sqrt(participation)

    def fraction(self, order_dollars: float, adv_dollars: float | None, sigma_daily: float | None) -> float:
        return self.half_spread(adv_dollars) + self.impact(order_dollars, adv_dollars, sigma_daily)

    def _adv(self, adv_dollars: float | None) -> float:
        if adv_dollars is None or not math.isfinite(adv_dollars) or adv_dollars <= 0:
            return self.fallback_adv
        return adv_dollars

    def describe(self) -> str:
        """The model's numbers, for a report's assumptions."""
        if self.half_spread_bps is not None:
            spread = f"half-spread {self.half_spread_bps:g} bp (class)"
        else:
            spread = "half-spread by ADV, log-linear between " + ", ".join(
                f"{_dollars(a)}: {b:g} bp" for a, b in self.anchors) + " (flat beyond)"
        return (f"{self.label}: {spread} + impact {self.impact_y:g} x sigma_daily x sqrt(fill $ / ADV $) "
                "(square-root law: Almgren et al. 2005, Toth et al. 2011); ADV and sigma_daily from the 20 "
                f"sessions before the fill's; no ADV history: priced at {_dollars(self.fallback_adv)} ADV; "
                f"no sigma: {self.fallback_sigma:.1%} a day; at least one tick ($0.01) a share")


def _dollars(amount: float) -> str:
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if amount >= size:
            return f"${amount / size:g}{unit}"
    return f"${amount:g}"


# Class presets: the class's spread and volatility, a class ADV only where a name has no history.
LIQUID_ETF = LiquidityModel("liquid-etf", half_spread_bps=1.0, fallback_adv=5e9, fallback_sigma=0.01)
LARGE_CAP = LiquidityModel("large-cap", half_spread_bps=3.0, fallback_adv=3e8, fallback_sigma=0.02)
SMALL_CAP = LiquidityModel("small-cap", half_spread_bps=30.0, fallback_adv=5e6, fallback_sigma=0.04)
# Each name by its own measured liquidity; a name without history is priced as thin.
BY_LIQUIDITY = LiquidityModel("by liquidity")
