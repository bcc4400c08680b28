"""Monitoring checks on a real DuckDB file: each fires on a constructed state and stays quiet on
a healthy one; broker checks against the real SimBroker and a stopped Alpaca fake; the
monitor flow once under the Prefect test harness, alerting through the local webhook fake."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from typer.testing import CliRunner

from tapeflow.backtest.costs import Costs
from tapeflow.brokers.base import Disconnected
from tapeflow.brokers.ledger import Ledger
from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.live.identity import decision_order_id
from tapeflow.model import Bar, Mode, Order, OrderType, Side, Timeframe, TimeInForce
from tapeflow.ops.checks import (
    MonitorConfig,
    broker_findings,
    check_broker,
    in_session,
    warehouse_findings,
    worst,
)
from tapeflow.venues.simulator import SimBroker
from tests.fakes.sim_venue import FaultyLink
from tests.fakes.webhook_receiver import WebhookReceiver

UTC = UTC
DAY = date(2024, 3, 4)  # a Monday; New York is on EST (UTC-5)
NOW = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)  # 10:00 New York, regular session
AFTER_CLOSE = datetime(2024, 3, 4, 22, 0, tzinfo=UTC)  # 17:00 New York
STRATEGY = "watchlist_momentum"
CONFIG = MonitorConfig(bars_source="alpaca", watchlist_source="bullalert")


def ago(**kw: float) -> datetime:
    return NOW - timedelta(**kw)


def healthy(con) -> None:
    """A running session with a fresh heartbeat, fresh feeds, a clean reconciliation, no locks."""
    con.execute("INSERT INTO trading_sessions VALUES (?, ?, '{}', 'h', 'sim', 'paper', ?, 'running', ?, NULL, FALSE, NULL, NULL, NULL)",
                [f"{STRATEGY}:h:sim:paper:{DAY}", STRATEGY, DAY, ago(minutes=30)])
    con.execute("INSERT INTO heartbeats VALUES (?, ?, '{}')", [f"trade_session:{STRATEGY}", ago(seconds=40)])
    con.execute("INSERT INTO source_freshness VALUES ('alpaca', 'bars:1m', ?, ?, ?, NULL)",
                [ago(minutes=2), ago(minutes=2), ago(minutes=3)])
    con.execute("INSERT INTO source_freshness VALUES ('bullalert', 'watchlist', ?, ?, ?, NULL)",
                [ago(minutes=1), ago(minutes=1), ago(minutes=1)])
    con.execute("INSERT INTO reconciliations VALUES ('sim', 'paper', ?, TRUE, '[]', 0, NULL)", [ago(hours=1)])
    con.execute("INSERT INTO kill_switch VALUES ('all', FALSE, 'released', ?, 'cli')", [ago(hours=2)])
    con.execute("INSERT INTO risk_locks VALUES (?, ?, 'daily_loss', 'yesterday', ?)",
                [STRATEGY, date(2024, 3, 1), datetime(2024, 3, 1, 18, tzinfo=UTC)])


def order_row(con, cid: str, status: str, updated_at: datetime) -> None:
    con.execute("INSERT INTO orders (client_order_id, mode, broker, strategy, symbol, side, qty, order_type, "
                "time_in_force, status, reason, created_at, updated_at) VALUES (?, 'paper', 'sim', ?, 'ACME', 'buy', "
                "100, 'market', 'day', ?, 'insufficient_buying_power: order needs 5,000.00', ?, ?)",
                [cid, STRATEGY, status, updated_at, updated_at])


@pytest.fixture
def state(warehouse):
    with warehouse.write() as con:
        healthy(con)
    return warehouse


def findings_after(warehouse, change: str | Callable, params: list | None = None, now: datetime = NOW,
                   config: MonitorConfig = CONFIG):
    with warehouse.write() as con:
        if callable(change):
            change(con)
        elif change:
            con.execute(change, params or [])
    return warehouse_findings(warehouse, now, config)


def test_healthy_warehouse_is_quiet(state):
    assert warehouse_findings(state, NOW, CONFIG) == []
    assert in_session(NOW) and not in_session(AFTER_CLOSE)


def test_silent_session_raises_missing_heartbeat(state):
    def fall_silent(con):
        con.execute("DELETE FROM heartbeats")
        con.execute("INSERT INTO heartbeats VALUES (?, ?, '{}')", [f"trade_session:{STRATEGY}", ago(minutes=4)])
        con.execute("INSERT INTO heartbeats VALUES (?, ?, '{}')", [f"trade_session:{STRATEGY}", NOW + timedelta(minutes=1)])
    [found] = findings_after(state, fall_silent)
    assert found.kind == "missing_heartbeat" and found.severity == "critical"
    assert found.key == f"missing_heartbeat:trade_session:{STRATEGY}:{DAY}"
    # A heartbeat stamped after `now` is not seen at `now`.
    assert "last heartbeat 4 min 0 s ago (limit 3 min 0 s)" in found.alert.message
    # Only while the session is open, and only for running sessions.
    assert warehouse_findings(state, AFTER_CLOSE, CONFIG) == []
    assert findings_after(state, "UPDATE trading_sessions SET status = 'finished'") == []


def test_session_without_any_heartbeat_gets_its_start_as_grace(state):
    with state.write() as con:
        con.execute("DELETE FROM heartbeats")
        con.execute("UPDATE trading_sessions SET started_at = ?", [ago(minutes=1)])
    assert warehouse_findings(state, NOW, CONFIG) == []
    [found] = warehouse_findings(state, NOW + timedelta(minutes=5), CONFIG)
    assert "no heartbeat since it started 6 min 0 s ago" in found.alert.message


def test_stale_bars_from_freshness_record_and_from_bars_table(state):
    [found] = findings_after(state, "UPDATE source_freshness SET last_data_end = ?, last_error = 'HTTP 503' "
                                    "WHERE kind = 'bars:1m'", [ago(minutes=25)])
    assert found.kind == "stale_data" and found.severity == "warning"
    assert found.key == f"stale_data:bars:1m:alpaca:{DAY}"
    assert "25 min 0 s old" in found.alert.message and "last error: HTTP 503" in found.alert.message
    # No freshness record: the newest bar's end in the table decides.
    def bars_only(con):
        con.execute("DELETE FROM source_freshness WHERE kind = 'bars:1m'")
        con.execute("INSERT INTO bars VALUES ('ACME', '1m', ?, ?, 1, 1, 1, 1, 100, NULL, NULL, 'raw', 'alpaca', ?)",
                    [ago(minutes=3), ago(minutes=2), ago(minutes=2)])
    assert findings_after(state, bars_only) == []
    later = NOW + timedelta(minutes=15)  # the heartbeat and the watchlist are late by then as well
    assert f"stale_data:bars:1m:alpaca:{DAY}" in {f.key for f in warehouse_findings(state, later, CONFIG)}
    # Replay data is history: never fresh, never checked.
    assert "stale_data" not in {f.kind for f in warehouse_findings(state, later, MonitorConfig(bars_source="replay"))}


def test_stale_watchlist_live_and_scanner(state):
    [found] = findings_after(state, "UPDATE source_freshness SET last_data_end = ? WHERE kind = 'watchlist'",
                             [ago(minutes=11)])
    assert found.key == f"stale_data:watchlist:bullalert:{DAY}"
    # The scanner lists once before the open: yesterday's list is stale, this morning's is not.
    scanner = MonitorConfig(watchlist_source="scanner")
    snapshot = "INSERT INTO watchlist_snapshots VALUES ('scanner', 'pre_market', ?, 'ACME', 1, 90, ?, 'x', NULL)"
    [found] = findings_after(state, snapshot, [datetime(2024, 3, 1, 14, tzinfo=UTC)] * 2, config=scanner)
    assert found.key == f"stale_data:watchlist:scanner:{DAY}" and "no watchlist from scanner today" in found.alert.message
    assert findings_after(state, snapshot, [datetime(2024, 3, 4, 14, tzinfo=UTC)] * 2, config=scanner) == []
    assert warehouse_findings(state, AFTER_CLOSE, MonitorConfig(watchlist_source="scanner", bars_source="alpaca")) == []


def test_rejected_orders_since_the_previous_check(state):
    cid = decision_order_id(STRATEGY, ago(minutes=5), "ACME", "enter")
    def orders(con):
        order_row(con, cid, "rejected", ago(minutes=1))
        order_row(con, "old-reject", "rejected", ago(minutes=20))
        order_row(con, "filled-one", "filled", ago(minutes=1))
        con.execute("INSERT INTO heartbeats VALUES ('monitor', ?, '{}')", [ago(minutes=10)])
    [found] = findings_after(state, orders)
    assert found.kind == "order_rejected" and found.key == f"order_rejected:strategy:{STRATEGY}:{cid}"
    assert "insufficient_buying_power" in found.alert.message
    # The next check, after this one ran, does not report it again.
    assert findings_after(state, "INSERT INTO heartbeats VALUES ('monitor', ?, '{}')", [NOW],
                          now=NOW + timedelta(minutes=1)) == []


def test_breaker_for_today_and_engaged_kill_switch(state):
    [found] = findings_after(state, "INSERT INTO risk_locks VALUES (?, ?, 'daily_loss', 'equity -2.1% from 100,000', ?)",
                             [STRATEGY, DAY, ago(minutes=3)])
    assert found.kind == "breaker_tripped" and found.severity == "critical"
    assert found.key == f"breaker_tripped:risk:{STRATEGY}:daily_loss:{DAY}"
    engaged = ago(minutes=1)
    findings = findings_after(state, "UPDATE kill_switch SET engaged = TRUE, reason = 'halt', changed_at = ?", [engaged])
    [switch] = [f for f in findings if f.kind == "kill_switch"]
    assert switch.key == f"kill_switch:risk:all:{engaged.isoformat()}" and switch.severity == "warning"
    assert worst(findings) == "critical" and worst([]) is None


def test_latest_unclean_reconciliation_is_drift_until_a_clean_one(state):
    diff = json.dumps([{"kind": "position", "symbol": "ACME", "detail": "broker holds 10, ledger says 0",
                        "explained": False}, {"kind": "order", "symbol": None, "detail": "adopted", "explained": True}])
    [found] = findings_after(state, "INSERT INTO reconciliations VALUES ('sim', 'paper', ?, FALSE, ?, 0, NULL)",
                             [ago(minutes=5), diff])
    assert found.kind == "position_drift" and "broker holds 10, ledger says 0" in found.alert.message
    assert "adopted" not in found.alert.message
    assert findings_after(state, "INSERT INTO reconciliations VALUES ('sim', 'paper', ?, TRUE, '[]', 0, NULL)",
                          [ago(minutes=1)]) == []


# -- the broker ---------------------------------------------------------------------------


def bar(at: datetime, price: float) -> Bar:
    return Bar(symbol="ACME", timeframe=Timeframe.MINUTE, ts=at, end=at + timedelta(minutes=1), open=price,
               high=price, low=price, close=price, volume=1e9, source="test")


def filled_sim(warehouse) -> tuple[SimBroker, Ledger, object]:
    """A sim account holding 10 ACME bought at 14:31 UTC; the ledger has not heard of the fill."""
    clock = [datetime(2024, 3, 4, 14, 30, tzinfo=UTC)]
    broker = SimBroker(warehouse, costs=Costs(participation=1.0), now=lambda: clock[0])
    broker.on_bar(bar(clock[0], 10.0))
    clock[0] += timedelta(seconds=30)
    broker.submit(Order(client_order_id="t-entry-acme", mode=Mode.PAPER, broker="sim", strategy=STRATEGY,
                        symbol="ACME", side=Side.BUY, qty=10, order_type=OrderType.MARKET,
                        time_in_force=TimeInForce.DAY, created_at=clock[0]))
    [fill] = broker.on_bar(bar(datetime(2024, 3, 4, 14, 31, tzinfo=UTC), 10.5))
    return broker, Ledger(warehouse, "sim", Mode.PAPER), fill


def test_position_the_ledger_does_not_explain(warehouse):
    broker, ledger, fill = filled_sim(warehouse)
    [found] = broker_findings(broker, ledger, NOW, CONFIG)
    assert found.kind == "position_drift" and found.key == f"position_drift:broker:sim:paper:ACME:{DAY}"
    assert "sim holds 10 ACME" in found.alert.message and "ledger's fills say 0" in found.alert.message
    # A fill only seconds old may still be on its way to the ledger.
    assert broker_findings(broker, ledger, fill.ts + timedelta(seconds=30), CONFIG) == []
    ledger.record_fill(fill)
    assert broker_findings(broker, ledger, NOW, CONFIG) == []


class Unplugged(FaultyLink):
    """The real SimBroker behind a link that is down for reads."""

    def positions(self):
        raise Disconnected("connection reset by peer", broker=self.name)


def test_disconnected_sim_broker(warehouse):
    broker = Unplugged(SimBroker(warehouse))
    [found] = check_broker(broker, warehouse, NOW, CONFIG)
    assert found.kind == "broker_disconnected" and found.key == f"broker_disconnected:broker:sim:paper:{DAY}"
    assert found.severity == "critical" and "connection reset by peer" in found.alert.message


def test_recovery_after_a_raised_disconnect_is_noted_once(warehouse):
    from tapeflow.ops.alert_book import AlertBook
    from tapeflow.ops.alerts import LogChannel

    book = AlertBook(warehouse, LogChannel())
    sim = SimBroker(warehouse)
    [down] = check_broker(Unplugged(sim), warehouse, NOW, CONFIG)
    book.raise_alert(down.alert, down.key, kind=down.kind)
    [up] = check_broker(sim, warehouse, NOW + timedelta(minutes=1), CONFIG)
    assert up.kind == "broker_recovered" and up.severity == "info"
    assert up.key == f"broker_recovered:broker:sim:paper:{NOW.isoformat()}"
    book.raise_alert(up.alert, up.key, kind=up.kind)
    assert check_broker(sim, warehouse, NOW + timedelta(minutes=2), CONFIG) == []


def test_stopped_alpaca_fake_is_a_disconnect(warehouse, tmp_path):
    from tests.fakes.alpaca_trading import FAKE_KEY, FAKE_SECRET, AlpacaVenue

    venue = AlpacaVenue(tmp_path)
    try:
        assert check_broker(venue.broker, warehouse, NOW, CONFIG) == []
        venue.fake.stop()
        [found] = check_broker(venue.broker, warehouse, NOW, CONFIG)
    finally:
        venue.stop()
    assert found.kind == "broker_disconnected" and found.key == f"broker_disconnected:broker:alpaca:paper:{DAY}"
    assert FAKE_SECRET not in found.alert.message and FAKE_KEY not in found.alert.message


# -- the flow and the CLI ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_monitor_flow_alerts_once_and_skips_outside_the_session(state, monkeypatch):
    from flows.monitor import monitor

    with state.write() as con:
        con.execute("DELETE FROM heartbeats")
        con.execute("INSERT INTO risk_locks VALUES (?, ?, 'daily_loss', 'equity -2.1%', ?)", [STRATEGY, DAY, ago(minutes=3)])
    monkeypatch.setenv("TAPEFLOW_MARKET_DATA_SOURCE", "alpaca")
    monkeypatch.setenv("TAPEFLOW_WATCHLIST_SOURCE", "bullalert")
    monkeypatch.setenv("TAPEFLOW_ALERT_FORMAT", "slack")
    with WebhookReceiver() as rx:
        monkeypatch.setenv("TAPEFLOW_ALERT_WEBHOOK_URL", f"{rx.url}/T0/B0/hook-secret")
        first = monitor(at=NOW)
        second = monitor(at=NOW + timedelta(minutes=1))
        skipped = monitor(at=AFTER_CLOSE)
        bodies = rx.bodies
    assert first == {"findings": 2, "critical": 2, "delivered": 2, "suppressed": 0, "failed": 0, "summaries": 0}
    assert second == {**first, "delivered": 0, "suppressed": 2}
    assert "outside the regular session" in skipped["skipped"]
    assert sorted(b["text"].split(":")[0] for b in bodies) == [
        "[critical] daily_loss breaker tripped for watchlist_momentum", f"[critical] {STRATEGY}"]
    assert all(b["blocks"][0]["type"] == "header" for b in bodies)
    with state.read() as con:
        rows = con.execute("SELECT kind, delivered FROM alerts ORDER BY ts, kind").fetchall()
        beats = con.execute("SELECT ts FROM heartbeats WHERE component = 'monitor' ORDER BY ts").fetchall()
        stored = json.dumps(con.execute("SELECT * FROM alerts").fetchall(), default=str)
    assert [r[0] for r in rows] == ["breaker_tripped", "missing_heartbeat"] * 2
    assert [r[1] for r in rows[:2]] == ["webhook:slack"] * 2 and all(r[1].startswith("suppressed:") for r in rows[2:])
    assert [b for (b,) in beats] == [NOW, NOW + timedelta(minutes=1)]
    assert "hook-secret" not in stored


def test_cli_monitor_exits_non_zero_on_critical_and_alerts_lists_them(state, monkeypatch):
    from tapeflow.cli.main import app

    runner = CliRunner()
    clear = runner.invoke(app, ["monitor", "--no-broker"])
    assert clear.exit_code == 0, clear.output
    today = datetime.now(UTC).astimezone(NEW_YORK).date()
    with state.write() as con:
        con.execute("INSERT INTO risk_locks VALUES ('all', ?, 'daily_loss', 'equity -3%', ?)",
                    [today, datetime.now(UTC) - timedelta(minutes=1)])
    tripped = runner.invoke(app, ["monitor", "--no-broker", "--alert"])
    assert tripped.exit_code == 1, tripped.output
    assert "breaker_tripped" in tripped.output and "0 failed" in tripped.output
    listed = runner.invoke(app, ["alerts", "--kind", "breaker_tripped", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert row["title"] == "daily_loss breaker tripped for all" and row["delivered"] == "log"
    assert row["severity"] == "critical" and row["component"] == "risk:all"
