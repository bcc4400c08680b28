"""Tests for tapeflow.model: every record refuses bad values where they enter, with a reason."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tapeflow.model import (
    Account,
    Action,
    Adjustment,
    Bar,
    Fill,
    InvalidRecord,
    Mode,
    NewsItem,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    Timeframe,
    TimeInForce,
    WatchlistRow,
)

UTC = UTC
T0 = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)
T1 = T0 + timedelta(minutes=1)


def bar(**overrides: object) -> Bar:
    fields: dict[str, object] = dict(
        symbol="SPY",
        timeframe="1m",
        ts=T0,
        end=T1,
        open=10.0,
        high=11.0,
        low=9.0,
        close=10.5,
        volume=1000.0,
        source="test",
    )
    fields.update(overrides)
    return Bar(**fields)  # type: ignore[arg-type]


# --- Bar ----------------------------------------------------------------------------


def test_valid_bar_keeps_its_values_and_normalises_enums() -> None:
    b = bar(adjustment="split", vwap=10.2, trade_count=7)
    assert (b.symbol, b.ts, b.end) == ("SPY", T0, T1)
    assert (b.open, b.high, b.low, b.close, b.volume) == (10.0, 11.0, 9.0, 10.5, 1000.0)
    assert b.timeframe is Timeframe.MINUTE
    assert b.adjustment is Adjustment.SPLIT
    assert b.vwap == 10.2 and b.trade_count == 7


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(high=8.0, low=9.0, open=8.5, close=8.5), r"^high 8\.0 is below low 9\.0$"),
        (dict(volume=-1.0), r"^volume must be >= 0, got -1\.0$"),
        (dict(open=math.nan), r"^open is not a finite number \(nan\)$"),
        (dict(close=math.inf), r"^close is not a finite number \(inf\)$"),
        (dict(low=-math.inf), r"^low is not a finite number \(-inf\)$"),
        (dict(low=0.0), r"^low must be > 0, got 0\.0$"),
        (dict(high=-5.0), r"^high must be > 0, got -5\.0$"),
        (dict(open=True), r"^open must be a number, got True$"),
        (dict(open="10"), r"^open must be a number, got '10'$"),
        (dict(open=12.0), r"^open 12\.0 / close 10\.5 outside the bar's range \[9\.0, 11\.0\]$"),
        (dict(close=8.0), r"^open 10\.0 / close 8\.0 outside the bar's range \[9\.0, 11\.0\]$"),
        (dict(symbol="spy"), r"^symbol must be 1-21 upper-case letters, digits or \. / \^ -, got 'spy'$"),
        (dict(symbol="SP Y"), r"^symbol must be 1-21 upper-case letters, digits or \. / \^ -, got 'SP Y'$"),
        (dict(symbol=""), r"^symbol is missing$"),
        (dict(symbol="   "), r"^symbol must be 1-21 upper-case letters"),
        (dict(vwap=0.0), r"^vwap must be > 0, got 0\.0$"),
        (dict(trade_count=-1), r"^trade_count must be >= 0, got -1$"),
        (dict(source=""), r"^source must be named$"),
    ],
)
def test_bar_refuses_bad_values(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRecord, match=message):
        bar(**overrides)


def test_bar_refuses_naive_ts() -> None:
    naive = datetime(2024, 3, 5, 14, 30)
    message = r"^ts is a naive timestamp \(2024-03-05T14:30:00\): a time zone is required$"
    with pytest.raises(InvalidRecord, match=message):
        bar(ts=naive)


def test_bar_refuses_naive_end() -> None:
    with pytest.raises(InvalidRecord, match=r"^end is a naive timestamp \(2024-03-05T14:31:00\)"):
        bar(end=datetime(2024, 3, 5, 14, 31))


def test_bar_refuses_ts_that_is_not_a_datetime() -> None:
    with pytest.raises(InvalidRecord, match=r"^ts must be a datetime, got str$"):
        bar(ts="2024-03-05T14:30:00+00:00")


@pytest.mark.parametrize("end", [T0, T0 - timedelta(seconds=1)], ids=["equal", "before"])
def test_bar_refuses_end_not_after_ts(end: datetime) -> None:
    with pytest.raises(InvalidRecord, match=r"^bar end .* is not after its start 2024-03-05T14:30:00\+00:00$"):
        bar(end=end)


def test_bar_refuses_unknown_timeframe() -> None:
    with pytest.raises(ValueError, match="'5m' is not a valid Timeframe"):
        bar(timeframe="5m")


def test_bar_converts_new_york_time_to_utc() -> None:
    ny = ZoneInfo("America/New_York")
    # 09:30 EST (UTC-5) in winter, 09:30 EDT (UTC-4) in summer.
    winter = bar(ts=datetime(2024, 1, 2, 9, 30, tzinfo=ny), end=datetime(2024, 1, 2, 9, 31, tzinfo=ny))
    assert winter.ts == datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    assert winter.ts.tzinfo is UTC and winter.ts.utcoffset() == timedelta(0)
    assert winter.end == datetime(2024, 1, 2, 14, 31, tzinfo=UTC) and winter.end.tzinfo is UTC
    summer = bar(ts=datetime(2024, 7, 1, 9, 30, tzinfo=ny), end=datetime(2024, 7, 1, 9, 31, tzinfo=ny))
    assert (summer.ts.hour, summer.ts.minute, summer.ts.utcoffset()) == (13, 30, timedelta(0))


def test_bar_is_frozen() -> None:
    b = bar()
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.close = 1.0  # type: ignore[misc]
    assert b.close == 10.5


# --- WatchlistRow / NewsItem ---------------------------------------------------------


def watch(**overrides: object) -> WatchlistRow:
    fields: dict[str, object] = dict(
        source="bullalert", session="pre_market", as_of=T0, fetched_at=T1, ticker="NVDA", rank=1, score=87.5
    )
    fields.update(overrides)
    return WatchlistRow(**fields)  # type: ignore[arg-type]


def test_watchlist_row_accepts_bounds() -> None:
    assert watch(score=0).score == 0.0
    assert watch(score=100, fetched_at=T0).score == 100.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(score=100.5), r"^score must be within 0\.\.100, got 100\.5$"),
        (dict(score=-0.1), r"^score must be within 0\.\.100, got -0\.1$"),
        (dict(score=math.nan), r"^score is not a finite number \(nan\)$"),
        (dict(rank=0), r"^rank must be an integer >= 1, got 0$"),
        (dict(rank=True), r"^rank must be an integer >= 1, got True$"),
        (dict(rank=1.0), r"^rank must be an integer >= 1, got 1\.0$"),
        (dict(fetched_at=T0 - timedelta(seconds=1)), r"^fetched_at is before as_of"),
        (dict(ticker="nvda"), r"^ticker must be 1-21 upper-case letters"),
    ],
)
def test_watchlist_row_refuses_bad_values(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRecord, match=message):
        watch(**overrides)


def news(published_at: datetime, fetched_at: datetime, **overrides: object) -> NewsItem:
    fields: dict[str, object] = dict(source="finnhub", id="n1", headline="Acme beats", tickers=("ACME",))
    fields.update(overrides)
    return NewsItem(published_at=published_at, fetched_at=fetched_at, **fields)  # type: ignore[arg-type]


def test_news_knowable_at_is_later_of_published_and_fetched() -> None:
    assert news(published_at=T0, fetched_at=T1).knowable_at == T1
    assert news(published_at=T1, fetched_at=T0).knowable_at == T1
    ny = ZoneInfo("America/New_York")
    # 09:31 New York in March (EST) is 14:31 UTC, later than 14:30 UTC.
    item = news(published_at=T0, fetched_at=datetime(2024, 3, 5, 9, 31, tzinfo=ny))
    assert item.knowable_at == T1 and item.knowable_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(id=""), r"^news id must be non-empty$"),
        (dict(headline="  "), r"^headline must be non-empty$"),
        (dict(tickers=("acme",)), r"^ticker must be 1-21 upper-case letters"),
    ],
)
def test_news_refuses_bad_values(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRecord, match=message):
        news(T0, T1, **overrides)


def test_news_refuses_naive_published_at() -> None:
    with pytest.raises(InvalidRecord, match=r"^published_at is a naive timestamp"):
        news(datetime(2024, 3, 5, 14, 30), T1)


# --- Order ---------------------------------------------------------------------------


def order(**overrides: object) -> Order:
    fields: dict[str, object] = dict(
        client_order_id="gap-SPY-1",
        mode="paper",
        broker="alpaca",
        strategy="gap",
        symbol="SPY",
        side="buy",
        qty=10,
        order_type="market",
        time_in_force="day",
        created_at=T0,
    )
    fields.update(overrides)
    return Order(**fields)  # type: ignore[arg-type]


def test_order_normalises_enums() -> None:
    o = order()
    assert (o.mode, o.side, o.order_type, o.status) == (Mode.PAPER, Side.BUY, OrderType.MARKET, OrderStatus.NEW)
    assert o.time_in_force is TimeInForce.DAY
    lim = order(order_type="limit", limit_price=101.5)
    assert lim.order_type is OrderType.LIMIT and lim.limit_price == 101.5


def test_action_is_enter_or_exit() -> None:
    # A strategy that holds emits no row; the engine reads anything but "enter" as an exit.
    assert [a.value for a in Action] == ["enter", "exit"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(order_type="limit"), r"^limit order needs limit_price$"),
        (dict(limit_price=100.0), r"^market order takes no limit_price$"),
        (dict(order_type="stop"), r"^stop order needs stop_price$"),
        (dict(order_type="stop_limit", limit_price=1.0), r"^stop_limit order needs stop_price$"),
        (dict(order_type="limit", limit_price=-1.0), r"^limit_price must be > 0, got -1\.0$"),
        (dict(created_at=datetime(2024, 3, 5)), r"^created_at is a naive timestamp"),
    ],
)
def test_order_refuses_bad_prices_and_times(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRecord, match=message):
        order(**overrides)


@pytest.mark.parametrize(
    ("qty", "message"), [(0, r"^qty must be > 0, got 0\.0$"), (-3, r"^qty must be > 0, got -3\.0$")]
)
def test_order_refuses_non_positive_qty(qty: float, message: str) -> None:
    with pytest.raises(InvalidRecord, match=message):
        order(qty=qty)


def test_order_refuses_unknown_side() -> None:
    with pytest.raises(ValueError, match="'hold' is not a valid Side"):
        order(side="hold")


def test_order_refuses_empty_client_order_id_and_missing_limit() -> None:
    with pytest.raises(InvalidRecord, match=r"^client_order_id must be non-empty$"):
        order(client_order_id="")
    with pytest.raises(InvalidRecord, match=r"^limit order needs limit_price$"):
        order(order_type="limit")


# --- Fill / Position / Account --------------------------------------------------------


def test_fill_basics() -> None:
    f = Fill(broker="alpaca", fill_id="f1", client_order_id="c1", symbol="SPY", side="sell", ts=T0, qty=5, price=501.25)
    assert f.side is Side.SELL and f.commission == 0.0
    with pytest.raises(InvalidRecord, match=r"^price must be > 0, got 0\.0$"):
        Fill(broker="a", fill_id="f", client_order_id="c", symbol="SPY", side="buy", ts=T0, qty=1, price=0)
    with pytest.raises(InvalidRecord, match=r"^commission must be >= 0, got -0\.5$"):
        Fill(
            broker="a", fill_id="f", client_order_id="c", symbol="SPY", side="buy", ts=T0, qty=1, price=1, commission=-0.5
        )


def test_position_allows_short_but_not_nan() -> None:
    assert Position(symbol="SPY", qty=-10, avg_price=500.0, as_of=T0).qty == -10
    with pytest.raises(InvalidRecord, match=r"^qty is not a finite number \(nan\)$"):
        Position(symbol="SPY", qty=math.nan, avg_price=500.0, as_of=T0)
    with pytest.raises(InvalidRecord, match=r"^avg_price must be >= 0, got -1\.0$"):
        Position(symbol="SPY", qty=1, avg_price=-1.0, as_of=T0)


def test_account_basics() -> None:
    pos = Position(symbol="SPY", qty=1, avg_price=500.0, as_of=T0)
    acct = Account(broker="alpaca", as_of=T0, equity=1000.0, cash=-50.0, buying_power=0.0, positions=(pos,))
    assert acct.positions == (pos,) and acct.cash == -50.0


def test_account_refuses_naive_as_of() -> None:
    with pytest.raises(InvalidRecord, match=r"^as_of is a naive timestamp \(2024-03-05T00:00:00\)"):
        Account(broker="alpaca", as_of=datetime(2024, 3, 5), equity=1.0, cash=1.0, buying_power=1.0)


def test_account_refuses_negative_buying_power() -> None:
    with pytest.raises(InvalidRecord, match=r"^buying_power must be >= 0, got -1\.0$"):
        Account(broker="alpaca", as_of=T0, equity=1.0, cash=1.0, buying_power=-1.0)


def test_records_are_frozen() -> None:
    acct = Account(broker="alpaca", as_of=T0, equity=1.0, cash=1.0, buying_power=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        acct.equity = 2.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        order().qty = 99  # type: ignore[misc]
