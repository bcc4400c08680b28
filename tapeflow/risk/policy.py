"""The execution policy: what becomes of a strategy's decision, one set of rules for the
backtest's event loop and fast path, replays, paper and live sessions.

At each decision, from what the account and the strategy's own book look like at that instant:
- an entry is refused while the session is closing (the time exit), while entries are stopped
  (kill switch, the day's loss lock), while the strategy holds the symbol or has an order
  working in it, or once the daily-loss breaker has tripped; otherwise it buys the signal's
  quantity or, when it gives none, what `Sizing` allows; then at most `max_position_pct` of
  equity, and at most the whole shares buying power pays for at the last close;
- an exit cancels the strategy's working orders in the symbol and sells what it holds;
- once an entry has stopped working with shares filled, a GTC sell stop `stop_loss_pct` under
  their average price, on the tick (rounded against the trader);
- intraday strategies: `exit_before_close` before the close the strategy's working orders are
  cancelled and what it holds is sold; no decision is taken from then on that day;
- the daily-loss breaker compares equity at each entry with the account's equity at the start
  of the New York day (marked at the previous close); once tripped it holds for the day;
- the kill switch cancels working entries and refuses new ones; exits and stops go through.
Slots, the position cap and exits concern the strategy's own positions and orders; equity,
buying power, the breaker and the kill switch are the account's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tapeflow.model import Outcome, Side, Timeframe


def tick_round(price: float, side: Side) -> float:
    """Round to the US equity tick ($0.01, $0.0001 under $1), against the trader."""
    tick, per_dollar = (0.01, 100) if price >= 1 else (0.0001, 10_000)
    steps = price / tick
    # The epsilon keeps an exact tick price (e.g. 10.07 stored as 10.0699999) where it is.
    steps = math.ceil(steps - 1e-9) if side is Side.BUY else math.floor(steps + 1e-9)
    return steps / per_dollar  # the double nearest the exact cents: what the compiled engine computes too


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


class DailyLossBreaker:
    """Each New York day's reference equity; `tripped` once equity is `limit_pct` under it,
    and from then on for the rest of that day."""

    def __init__(self, limit_pct: float | None) -> None:
        if limit_pct is not None and not 0 < limit_pct < 1:
            raise ValueError("the daily loss limit must be within (0, 1), e.g. 0.02")
        self.limit_pct = limit_pct
        self._session: int | None = None
        self._start = 0.0
        self._tripped_at: float | None = None  # the equity that tripped it this session

    def observe(self, session: int, equity: float) -> None:
        """The first equity seen in a session is its reference."""
        if session != self._session:
            self._session, self._start, self._tripped_at = session, equity, None

    def tripped(self, session: int, equity: float) -> bool:
        if self.limit_pct is None or session != self._session or self._start <= 0:
            return False
        if self._tripped_at is None and equity / self._start - 1 <= -self.limit_pct:
            self._tripped_at = equity
        return self._tripped_at is not None

    def describe(self, session: int, equity: float) -> str:
        return loss_detail(self._tripped_at if self._tripped_at is not None else equity, self._start)


def loss_detail(equity: float, start: float) -> str:
    """How far `equity` is from the session's starting `start`, as a refused entry states it."""
    return f"equity {equity:,.2f} is {100 * (equity / start - 1):.2f}% from the session's {start:,.2f}"


@dataclass(frozen=True)
class Halt:
    """The kill switch engaged from `start` until `end` (None: for good): a backtest's record of
    what a session read from the switch."""

    start: datetime
    end: datetime | None
    reason: str


@dataclass(frozen=True)
class BookView:
    """What an entry may know: the account's equity and buying power (inf: not checked), and
    the strategy's own positions and the symbols its orders are working in."""

    equity: float
    buying_power: float
    held: Mapping[str, float]
    working: Set[str]

    def busy(self, symbol: str) -> bool:
        return bool(self.held.get(symbol)) or symbol in self.working

    @property
    def slots(self) -> int:
        """Positions held plus symbols with only an order working: what max_positions counts."""
        return len({s for s, q in self.held.items() if q} | set(self.working))


@dataclass(frozen=True)
class ExecutionPolicy:
    """The rules every mode applies to a strategy's decisions; the defaults are the project's."""

    sizing: Sizing = field(default_factory=Sizing)
    max_position_pct: float | None = 0.25  # the most one name may take of equity; None: no cap
    stop_loss_pct: float | None = None  # protective sell stop this far under each entry's fill
    daily_loss_limit_pct: float | None = 0.02  # e.g. 0.02: no entries for the day once 2% down
    flatten_on_breaker: bool = False  # also sell what the strategy holds when the breaker trips
    exit_before_close: timedelta | None = timedelta(minutes=5)  # intraday strategies: flat by then

    def __post_init__(self) -> None:
        if self.max_position_pct is not None and not 0 < self.max_position_pct <= 1:
            raise ValueError("max_position_pct must be within (0, 1]")
        if self.stop_loss_pct is not None and not 0 < self.stop_loss_pct < 1:
            raise ValueError("stop_loss_pct must be within (0, 1), e.g. 0.02")
        DailyLossBreaker(self.daily_loss_limit_pct)  # checks the limit
        if self.exit_before_close is not None and not timedelta(0) < self.exit_before_close <= timedelta(hours=6):
            raise ValueError("exit_before_close must be within (0, 6 h]")

    def breaker(self) -> DailyLossBreaker:
        return DailyLossBreaker(self.daily_loss_limit_pct)

    def entry(self, symbol: str, *, asked: float | None, price: float | None, book: BookView) -> float | str:
        """Shares to buy for an entry in `symbol` at about `price` (its last close), or the
        outcome that refuses it. The gates before sizing (closing, stopped, busy, breaker) are
        the caller's, in that order: `gate` spells them."""
        needs_price = asked is None or self.max_position_pct is not None or math.isfinite(book.buying_power)
        if needs_price and (price is None or not math.isfinite(price) or price <= 0):
            return Outcome.SIZED_TO_ZERO if asked is None else Outcome.NO_PRICE
        qty = asked if asked is not None else self.sizing.shares(
            equity=book.equity, buying_power=book.buying_power, price=price, open_positions=book.slots,
            stop_distance=price * self.stop_loss_pct if price and self.stop_loss_pct else None)
        if self.max_position_pct is not None and price:
            qty = min(qty, math.floor(self.max_position_pct * max(book.equity, 0.0) / price))
        if not qty or qty <= 0:
            return Outcome.SIZED_TO_ZERO
        if math.isfinite(book.buying_power) and price:
            affordable = max(0, math.floor(book.buying_power / price))
            if affordable == 0:
                return Outcome.NO_BUYING_POWER.with_detail(f"{book.buying_power:,.2f}")
            qty = min(qty, affordable)
        return float(qty)

    def gate(self, symbol: str, *, closing: bool, stopped: str | None, book: BookView,
             breaker: DailyLossBreaker, session: int) -> str | None:
        """Why an entry may not be taken at all now, or None; checks the breaker last (it
        latches, so it is only consulted for an entry that would otherwise go)."""
        if closing:
            return Outcome.CLOSING
        if stopped:
            return Outcome.ENTRIES_STOPPED.with_detail(stopped)
        if book.busy(symbol):
            return Outcome.BUSY
        if breaker.tripped(session, book.equity):
            return Outcome.DAILY_LOSS.with_detail(breaker.describe(session, book.equity))
        return None

    def stop_price(self, average_fill: float) -> float | None:
        """The protective stop under an entry filled at `average_fill`, or None without one."""
        if not self.stop_loss_pct:
            return None
        return tick_round(average_fill * (1 - self.stop_loss_pct), Side.SELL)

    def has_time_exit(self, timeframe: Timeframe) -> bool:
        """Whether a strategy of `timeframe` is made flat before each close (intraday ones only)."""
        return Timeframe(timeframe) is Timeframe.MINUTE and self.exit_before_close is not None

    def exit_at(self, close: datetime, timeframe: Timeframe) -> datetime | None:
        """When an intraday strategy's session stops deciding and sells what it holds."""
        if not self.has_time_exit(timeframe) or self.exit_before_close is None:
            return None
        return close - self.exit_before_close

    def passive(self, timeframe: Timeframe) -> bool:
        """No rule that couples one order to another, to the account or to the clock for a
        strategy of `timeframe`: what the backtest's fast path needs."""
        return (self.max_position_pct is None and not self.stop_loss_pct and self.daily_loss_limit_pct is None
                and not self.has_time_exit(timeframe))

    def describe(self) -> dict[str, object]:
        """The rules as a record states them."""
        return {
            "position_fraction": self.sizing.fraction, "max_positions": self.sizing.max_positions,
            "risk_per_trade": self.sizing.risk_per_trade, "max_position_pct": self.max_position_pct,
            "stop_loss_pct": self.stop_loss_pct, "daily_loss_limit_pct": self.daily_loss_limit_pct,
            "flatten_on_breaker": self.flatten_on_breaker,
            "exit_before_close_minutes": None if self.exit_before_close is None else self.exit_before_close.total_seconds() / 60,
        }

    def sentence(self) -> str:
        """The rules in one line, for reports."""
        parts = [f"{self.sizing.fraction:.0%} of equity per entry when the strategy gives no quantity, "
                 f"at most {self.sizing.max_positions} positions"]
        if self.sizing.risk_per_trade:
            parts.append(f"at most {self.sizing.risk_per_trade:.2%} of equity risked to the stop")
        parts.append(f"at most {self.max_position_pct:.0%} of equity in one name" if self.max_position_pct else "no position cap")
        parts.append(f"stop loss {self.stop_loss_pct:.1%} under each entry" if self.stop_loss_pct else "no stop loss")
        parts.append(f"daily loss limit {self.daily_loss_limit_pct:.1%}" + (" (then flat)" if self.flatten_on_breaker else "")
                     if self.daily_loss_limit_pct else "no daily loss limit")
        if self.exit_before_close is not None:
            parts.append(f"intraday strategies flat {self.exit_before_close.total_seconds() / 60:g} min before the close")
        return "; ".join(parts)


DEFAULT_POLICY = ExecutionPolicy()
"""The project's rules: flows, deployments, commands and sessions take their defaults from here."""


RULES_OFF = ExecutionPolicy(max_position_pct=None, daily_loss_limit_pct=None, exit_before_close=None)
"""No cap, stop, breaker or time exit: decisions taken as they come (the SMA benchmark's rules,
and the replay of a session's recorded decisions)."""


def policy_from(fraction: float, max_positions: int, risk_per_trade: float | None, max_position_pct: float | None,
                stop_loss_pct: float | None, daily_loss_limit_pct: float | None,
                flatten_on_breaker: bool = False) -> ExecutionPolicy:
    """The policy from the flat parameters flows and commands take (defaults: DEFAULT_POLICY's)."""
    return ExecutionPolicy(Sizing(fraction, max_positions, risk_per_trade), max_position_pct, stop_loss_pct,
                           daily_loss_limit_pct, flatten_on_breaker)
