"""Domain records: what tapeflow knows about the market, its orders and its broker, and the
enums its decisions are spelled in (a decision is a row of a signal frame: `tapeflow.schemas.SIGNAL_SCHEMA`).

Every record is frozen and validated when built, so a bad value fails where it enters,
with a reason, instead of surfacing later as a wrong number. Times are aware UTC datetimes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class InvalidRecord(ValueError):
    """A record that breaks a domain rule; the message says which and why."""


class Timeframe(StrEnum):
    MINUTE = "1m"
    DAY = "1d"


class Adjustment(StrEnum):
    """How a vendor adjusted its prices; never mixed silently for one symbol."""

    RAW = "raw"
    SPLIT = "split"
    ALL = "all"  # splits and dividends
    UNKNOWN = "unknown"


class ActionKind(StrEnum):
    """What a corporate action does to a share (tapeflow/backtest/adjust.py prices it)."""

    SPLIT = "split"
    REVERSE_SPLIT = "reverse_split"
    CASH_DIVIDEND = "cash_dividend"
    SPECIAL_DISTRIBUTION = "special_distribution"
    SPIN_OFF = "spin_off"
    SYMBOL_CHANGE = "symbol_change"
    DELISTING = "delisting"


class AdjustMode(StrEnum):
    """Which corporate actions a backtest's prices are adjusted for."""

    RAW = "raw"  # prices as traded
    SPLITS = "splits"  # splits, reverse splits, spin-offs and special distributions
    TOTAL_RETURN = "total-return"  # those and regular cash dividends


class Mode(StrEnum):
    BACKTEST = "backtest"
    PAPER = "paper"
    LIVE = "live"


class Role(StrEnum):
    """What a machine of a multi-machine install does: warehouse owns the DuckDB file (and is
    the whole install on one machine); compute runs backtests and research and hands results back."""

    WAREHOUSE = "warehouse"
    COMPUTE = "compute"


class Runtime(StrEnum):
    """What runs a sentiment model's forward pass: torch (the reference), or ONNX Runtime on its export,
    float32 (torch's labels, faster) or int8 weights (faster still, ~2% of labels differ)."""

    TORCH = "torch"
    ONNX = "onnx"
    ONNX_INT8 = "onnx-int8"


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"
    OPG = "opg"  # market-on-open
    CLS = "cls"  # market-on-close


class Action(StrEnum):
    """What a decision does: open a position or close it (a strategy that holds emits no row)."""

    ENTER = "enter"
    EXIT = "exit"


class Outcome(StrEnum):
    """What became of a decision, in a backtest and in a session alike; the ones that carry a
    figure get it in brackets (`with_detail`)."""

    DECIDED = "decided"  # a session recorded it; nothing sent yet
    SENT = "sent"  # a session's order reached the broker
    PLACED = "placed"  # a backtest's order filled, in whole or in part
    NEVER_FILLED = "placed: never filled"  # its window passed, or an exit cancelled it first
    CANCELLED_ENTRY = "cancelled the working entry"  # an exit with nothing held: the entry still working goes
    REJECTED = "rejected"
    NO_BARS = "ignored: no bars for the symbol"
    NO_PRICE = "ignored: no price for the symbol yet"
    TOO_OLD = "ignored: decided too long ago"
    CLOSING = "ignored: the session is closing"
    ENTRIES_STOPPED = "ignored: entries stopped"
    BUSY = "ignored: already in a position or an order is working"
    NOTHING_TO_EXIT = "ignored: nothing to exit"
    SIZED_TO_ZERO = "ignored: sized to zero shares"
    DAILY_LOSS = "ignored: daily loss limit hit"
    NO_BUYING_POWER = "ignored: insufficient buying power"
    NOT_IN_UNIVERSE = "ignored: not in universe"  # an entry on a symbol the universe did not hold at the decision

    def with_detail(self, detail: str) -> str:
        """The outcome followed by its figure in brackets, e.g. the buying power left."""
        return f"{self.value} ({detail})"


class OrderStatus(StrEnum):
    PENDING = "pending"  # recorded before sending; the broker has not acknowledged it
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    REPLACED = "replaced"  # a replacement order works in its place


# -- field rules, shared by every record -------------------------------------------------


def check_aware(name: str, value: datetime) -> datetime:
    """Return `value` in UTC; a naive datetime is rejected because its instant is unknown."""
    if not isinstance(value, datetime):
        raise InvalidRecord(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise InvalidRecord(f"{name} is a naive timestamp ({value.isoformat()}): a time zone is required")
    return value.astimezone(UTC)


def parse_instant(name: str, text: str | None) -> tuple[datetime | None, str | None]:
    """An aware instant parsed from ISO-8601 text, or None and the reason it is not one."""
    if text is None or not text.strip():
        return None, f"{name} is missing"
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None, f"{name} is not an ISO-8601 timestamp ({text!r})"
    if value.tzinfo is None:
        return None, f"{name} is a naive timestamp ({text}): a time zone is required"
    return value, None


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRecord(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise InvalidRecord(f"{name} is not a finite number ({value})")
    return float(value)


def _positive(name: str, value: float) -> float:
    value = _finite(name, value)
    if value <= 0:
        raise InvalidRecord(f"{name} must be > 0, got {value}")
    return value


def _non_negative(name: str, value: float) -> float:
    value = _finite(name, value)
    if value < 0:
        raise InvalidRecord(f"{name} must be >= 0, got {value}")
    return value


SYMBOL_PATTERN = r"^[A-Z0-9^][A-Z0-9./^-]{0,20}$"
"""Upper-case ticker: letters, digits and the class / index marks of US symbols (BRK.B, BF-B, ^VIX)."""
SYMBOL_RULE = "symbol must be 1-21 upper-case letters, digits or . / ^ -"


MINUTE_SPAN = timedelta(minutes=1)
MINUTE_SPAN_RULE = "a 1m bar must span exactly one minute"
MAX_DAY_SPAN = timedelta(days=1)
DAY_SPAN_RULE = "a 1d bar must span at most one day"


def _symbol(name: str, value: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRecord(f"{name} is missing")
    if not re.fullmatch(SYMBOL_PATTERN, value):
        raise InvalidRecord(f"{SYMBOL_RULE.replace('symbol', name, 1)}, got {value!r}")
    return value


def _set(obj: object, name: str, value: object) -> None:
    # Frozen dataclasses normalise their fields (e.g. to UTC) through object.__setattr__.
    object.__setattr__(obj, name, value)


# -- market data ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar: [ts, end) in UTC; knowable from `end` on."""

    symbol: str
    timeframe: Timeframe
    ts: datetime
    end: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    source: str
    adjustment: Adjustment = Adjustment.UNKNOWN
    vwap: float | None = None
    trade_count: int | None = None

    def __post_init__(self) -> None:
        _symbol("symbol", self.symbol)
        _set(self, "timeframe", Timeframe(self.timeframe))
        _set(self, "adjustment", Adjustment(self.adjustment))
        _set(self, "ts", check_aware("ts", self.ts))
        _set(self, "end", check_aware("end", self.end))
        if self.end <= self.ts:
            raise InvalidRecord(f"bar end {self.end.isoformat()} is not after its start {self.ts.isoformat()}")
        span = self.end - self.ts
        if self.timeframe is Timeframe.MINUTE and span != MINUTE_SPAN:
            raise InvalidRecord(f"{MINUTE_SPAN_RULE}, got {span}")
        if self.timeframe is Timeframe.DAY and span > MAX_DAY_SPAN:
            raise InvalidRecord(f"{DAY_SPAN_RULE}, got {span}")
        for name in ("open", "high", "low", "close"):
            _set(self, name, _positive(name, getattr(self, name)))
        _set(self, "volume", _non_negative("volume", self.volume))
        if self.high < self.low:
            raise InvalidRecord(f"high {self.high} is below low {self.low}")
        if not (self.low <= self.open <= self.high and self.low <= self.close <= self.high):
            raise InvalidRecord(
                f"open {self.open} / close {self.close} outside the bar's range [{self.low}, {self.high}]"
            )
        if self.vwap is not None:
            _set(self, "vwap", _positive("vwap", self.vwap))
        if self.trade_count is not None and self.trade_count < 0:
            raise InvalidRecord(f"trade_count must be >= 0, got {self.trade_count}")
        if not self.source:
            raise InvalidRecord("source must be named")


class WatchlistSession(StrEnum):
    """The part of the day a watchlist snapshot belongs to, named as the calendar's phases are.

    The values are the names stored in `watchlist_snapshots.session` and spoken by BullAlert:
    the regular session is stored as "market".
    """

    PRE_MARKET = "pre_market"
    REGULAR = "market"
    AFTER_HOURS = "after_hours"


WATCHLIST_SESSIONS = tuple(s.value for s in WatchlistSession)


@dataclass(frozen=True, slots=True)
class WatchlistRow:
    """One ticker on a watchlist snapshot, as the source published it at `as_of`."""

    source: str
    session: str
    as_of: datetime
    fetched_at: datetime
    ticker: str
    rank: int
    score: float
    payload_hash: str = ""

    def __post_init__(self) -> None:
        _symbol("ticker", self.ticker)
        if self.session not in WATCHLIST_SESSIONS:
            raise InvalidRecord(f"session must be one of {', '.join(WATCHLIST_SESSIONS)}, got {self.session!r}")
        _set(self, "as_of", check_aware("as_of", self.as_of))
        _set(self, "fetched_at", check_aware("fetched_at", self.fetched_at))
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise InvalidRecord(f"rank must be an integer >= 1, got {self.rank!r}")
        score = _finite("score", self.score)
        if not 0 <= score <= 100:
            raise InvalidRecord(f"score must be within 0..100, got {score}")
        _set(self, "score", score)
        if self.fetched_at < self.as_of:
            raise InvalidRecord("fetched_at is before as_of: a snapshot cannot be seen before it exists")


NEWS_CLOCK_SKEW = timedelta(minutes=5)
"""How far a vendor's publish stamp may run ahead of our clock; `knowable_at` takes the later."""


@dataclass(frozen=True, slots=True)
class NewsItem:
    """A headline as published and as first seen by tapeflow."""

    source: str
    id: str
    published_at: datetime
    fetched_at: datetime
    headline: str
    summary: str = ""
    url: str = ""
    tickers: tuple[str, ...] = ()
    category: str | None = None
    author: str = ""

    def __post_init__(self) -> None:
        if not self.source:
            raise InvalidRecord("source must be named")
        if not self.id:
            raise InvalidRecord("news id must be non-empty")
        if not isinstance(self.headline, str) or not self.headline.strip():
            raise InvalidRecord("headline must be non-empty")
        _set(self, "published_at", check_aware("published_at", self.published_at))
        _set(self, "fetched_at", check_aware("fetched_at", self.fetched_at))
        if self.published_at - self.fetched_at > NEWS_CLOCK_SKEW:
            # The fetch time stays out of the reason: the quarantine keys on it, and a re-poll
            # of the same bad item must not add a row.
            raise InvalidRecord(
                f"published_at {self.published_at.isoformat()} is more than {NEWS_CLOCK_SKEW} after the item "
                "was fetched: an item cannot be seen before it exists"
            )
        _set(self, "tickers", tuple(_symbol("ticker", t) for t in self.tickers))

    @property
    def knowable_at(self) -> datetime:
        """A strategy may use the item only once it was both published and fetched."""
        return max(self.published_at, self.fetched_at)


# -- execution --------------------------------------------------------------------------


def _check_prices(order_type: OrderType, limit_price: float | None, stop_price: float | None) -> None:
    needs_limit = order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    needs_stop = order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
    if needs_limit != (limit_price is not None):
        raise InvalidRecord(f"{order_type} order {'needs' if needs_limit else 'takes no'} limit_price")
    if needs_stop != (stop_price is not None):
        raise InvalidRecord(f"{order_type} order {'needs' if needs_stop else 'takes no'} stop_price")
    if limit_price is not None:
        _positive("limit_price", limit_price)
    if stop_price is not None:
        _positive("stop_price", stop_price)


@dataclass(frozen=True, slots=True)
class Order:
    """An order as tapeflow asked for it; `client_order_id` makes resubmission idempotent."""

    client_order_id: str
    mode: Mode
    broker: str
    strategy: str
    symbol: str
    side: Side
    qty: float
    order_type: OrderType
    time_in_force: TimeInForce
    created_at: datetime
    limit_price: float | None = None
    stop_price: float | None = None
    status: OrderStatus = OrderStatus.NEW
    reason: str = ""
    # A bracket: once the entry fills, a take-profit limit and a stop-loss stop, one cancels the other.
    take_profit_price: float | None = None
    stop_loss_price: float | None = None

    def __post_init__(self) -> None:
        if not self.client_order_id:
            raise InvalidRecord("client_order_id must be non-empty")
        if len(self.client_order_id) > 64 or not re.fullmatch(r"[A-Za-z0-9._:-]+", self.client_order_id):
            raise InvalidRecord("client_order_id must be 1-64 letters, digits or . _ : -")
        _symbol("symbol", self.symbol)
        _set(self, "mode", Mode(self.mode))
        _set(self, "side", Side(self.side))
        _set(self, "order_type", OrderType(self.order_type))
        _set(self, "time_in_force", TimeInForce(self.time_in_force))
        _set(self, "status", OrderStatus(self.status))
        _set(self, "created_at", check_aware("created_at", self.created_at))
        _positive("qty", self.qty)
        _check_prices(self.order_type, self.limit_price, self.stop_price)
        if (self.take_profit_price is None) != (self.stop_loss_price is None):
            raise InvalidRecord("a bracket needs both take_profit_price and stop_loss_price")
        if self.take_profit_price is not None and self.stop_loss_price is not None:
            _positive("take_profit_price", self.take_profit_price)
            _positive("stop_loss_price", self.stop_loss_price)
            above, below = (self.take_profit_price, self.stop_loss_price) if self.side is Side.BUY else (
                self.stop_loss_price, self.take_profit_price)
            if above <= below:
                raise InvalidRecord(f"a {self.side} bracket's take-profit must be on the profitable side of its stop-loss")

    @property
    def is_bracket(self) -> bool:
        return self.take_profit_price is not None


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution against an order."""

    broker: str
    fill_id: str
    client_order_id: str
    symbol: str
    side: Side
    ts: datetime
    qty: float
    price: float
    commission: float = 0.0

    def __post_init__(self) -> None:
        _symbol("symbol", self.symbol)
        _set(self, "side", Side(self.side))
        _set(self, "ts", check_aware("ts", self.ts))
        _positive("qty", self.qty)
        _positive("price", self.price)
        _non_negative("commission", self.commission)


@dataclass(frozen=True, slots=True)
class Position:
    """Holdings in one symbol; negative qty is a short."""

    symbol: str
    qty: float
    avg_price: float
    as_of: datetime

    def __post_init__(self) -> None:
        _symbol("symbol", self.symbol)
        _finite("qty", self.qty)
        _non_negative("avg_price", self.avg_price)
        _set(self, "as_of", check_aware("as_of", self.as_of))


@dataclass(frozen=True, slots=True)
class Account:
    """Broker account state at `as_of`."""

    broker: str
    as_of: datetime
    equity: float
    cash: float
    buying_power: float
    last_equity: float | None = None
    positions: tuple[Position, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        _set(self, "as_of", check_aware("as_of", self.as_of))
        _finite("equity", self.equity)
        _finite("cash", self.cash)
        _non_negative("buying_power", self.buying_power)
        if self.last_equity is not None:
            _finite("last_equity", self.last_equity)

