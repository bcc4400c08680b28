"""The trade-session flow as users run it: a bundled SPY day replayed against the simulated
broker gives the backtest's own fills; a live session needs a promotion; the kill switch from
the CLI and from a Prefect variable."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta

import pytest
from typer.testing import CliRunner

from flows.ingest import ingest_bars
from flows.trade import KILL_VARIABLE, prefect_kill_switch, trade_session
from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import cost_preset
from tapeflow.backtest.engine import simulate
from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.cli.main import app
from tapeflow.config import load_settings
from tapeflow.live.launch import live_session
from tapeflow.live.promotion import NotPromoted, promote
from tapeflow.model import Timeframe
from tapeflow.risk.policy import DEFAULT_POLICY
from tapeflow.risk.state import kill_switch
from tapeflow.strategy.history import History
from tapeflow.strategy.registry import get_strategy
from tapeflow.venues.simulator import SimBroker
from warehouse import Warehouse, open_warehouse
from warehouse.reads import bars_between

pytestmark = pytest.mark.slow

DAY = date(2011, 3, 3)
runner = CliRunner()


@pytest.mark.usefixtures("prefect_harness")
def test_a_replayed_paper_day_fills_like_the_backtest_of_that_day(tapeflow_home):
    ingest_bars(source="replay", symbols=["SPY"], timeframe=Timeframe.MINUTE, start=date(2011, 3, 1), end=date(2011, 3, 4))
    result = trade_session(strategy="opening_range", replay_day=DAY, stop_loss_pct=0.005)
    assert result["status"] == "finished" and result["reconciled"] and result["fills"] >= 2
    replay = Warehouse(result["warehouse"])
    with replay.read() as con:
        paper = con.execute("SELECT side, qty, price FROM fills ORDER BY ts").fetchall()
        decisions = con.execute("SELECT outcome FROM session_decisions ORDER BY decided_at").fetchall()
    assert all(o == ("sent",) for o in decisions)

    # The same strategy, sizing, stop and costs through the backtest engine on the same bars.
    start = datetime.combine(DAY, time(0), NEW_YORK)
    with open_warehouse(load_settings()).read() as con:
        bars = bars_between(con, "1m", start, start + timedelta(days=1), ["SPY"])
    strategy = get_strategy("opening_range")()
    backtest = simulate(bars, strategy.signals(History(bars)), BacktestConfig(
        cash=100_000.0, costs=cost_preset("flat-commission"), policy=replace(DEFAULT_POLICY, stop_loss_pct=0.005)))
    expected = [(r["side"], r["qty"], r["price"]) for r in backtest.fills.iter_rows(named=True)]
    assert [(side, qty, pytest.approx(price, abs=0.005)) for side, qty, price in paper] == expected
    # The main warehouse's paper account is untouched: a replay keeps to its own file.
    with open_warehouse(load_settings()).write() as con:
        assert con.execute("SELECT count(*) FROM orders WHERE mode = 'paper'").fetchone()[0] == 0


def test_a_live_session_needs_its_promotion_and_trades_the_stored_bars_on_the_sim(tapeflow_home):
    settings = load_settings()
    warehouse = open_warehouse(settings)
    with pytest.raises(NotPromoted, match="tapeflow promote opening_range --to paper"):
        live_session(settings, warehouse, "opening_range")
    promote(warehouse, "opening_range", {"range_minutes": 30}, "paper")
    launched = live_session(settings, warehouse, "opening_range")
    assert launched.session.strategy.p["range_minutes"] == 30  # the promoted parameters
    assert isinstance(launched.session.broker, SimBroker) and launched.session.market is not None


def test_kill_switch_command(tapeflow_home):
    refused = runner.invoke(app, ["kill-switch", "on", "--strategy", "opening_range"])
    assert refused.exit_code == 2 and "--reason" in refused.output
    engaged = runner.invoke(app, ["kill-switch", "on", "--strategy", "opening_range", "--reason", "halted news"])
    assert engaged.exit_code == 0, engaged.output
    warehouse = open_warehouse(load_settings())
    assert kill_switch(warehouse, "opening_range") == "kill switch (opening_range): halted news"
    assert kill_switch(warehouse, "sma_cross") is None
    assert runner.invoke(app, ["kill-switch", "off", "--strategy", "opening_range"]).exit_code == 0
    assert kill_switch(warehouse, "opening_range") is None


@pytest.mark.usefixtures("prefect_harness")
def test_the_prefect_variable_kill_switch():
    from prefect.variables import Variable

    engaged = prefect_kill_switch("opening_range")
    Variable.set(KILL_VARIABLE, "", overwrite=True)
    assert engaged() is None
    Variable.set(KILL_VARIABLE, "sma_cross, opening_range", overwrite=True)
    assert "opening_range" in engaged()
    Variable.set(KILL_VARIABLE, "all", overwrite=True)
    assert prefect_kill_switch("watchlist_momentum")() is not None
    Variable.set(KILL_VARIABLE, "", overwrite=True)


def test_a_replay_of_days_without_bars_is_refused_before_prefect_starts(tapeflow_home):
    refused = runner.invoke(app, ["trade", "opening_range", "--replay-day", "2011-03-03"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert refused.stderr.strip() == ("the warehouse has no 1m bars on 2011-03-03..2011-03-03: ingest them first, "
                                      "e.g. tapeflow ingest --timeframe 1m --start 2011-03-03 --end 2011-03-04")


def test_the_run_form_describes_every_parameter():
    """Prefect reads the docstring's Args: the run form says what each field does."""
    import inspect

    described = {name: schema.get("description") for name, schema in trade_session.parameters.properties.items()}
    assert set(described) == set(inspect.signature(trade_session.fn).parameters)
    assert all(described.values()), [name for name, text in described.items() if not text]
    assert trade_session.description.splitlines()[0].startswith("Trade one strategy")
