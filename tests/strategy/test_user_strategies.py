"""A user's own strategy, in a file outside tapeflow: found through TAPEFLOW_STRATEGY_PATH,
listed, backtested (from a file and through the flow) and look-ahead checked by name, with
clear refusals for a broken file, a name taken twice and an unknown name."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tapeflow.cli.main import app
from tapeflow.config import PROJECT_DATA, PROJECT_DIR
from tapeflow.sources import Window
from tapeflow.sources.replay import ReplaySource
from tapeflow.strategy.registry import StrategyNotFound, available, get_strategy

runner = CliRunner()
EXAMPLES = PROJECT_DIR / "docs" / "examples"  # the example docs/strategies.md walks through

LEAKY = '''
import polars as pl
from tapeflow.model import Timeframe
from tapeflow.strategy.base import Param, Strategy, signal_frame


class PeeksAhead(Strategy):
    """Buys the day before a rise: it reads tomorrow's close."""

    name = "peeks_ahead"
    timeframe = Timeframe.DAY
    params = (Param("qty", int, 10, 1, 100, "shares"),)

    def signals(self, history):
        bars = history.bars.sort("symbol", "ts")
        rising = bars.filter(pl.col("close").shift(-1).over("symbol") > pl.col("close"))
        return signal_frame(rising.select("symbol", pl.col("end_ts").alias("at"), pl.lit("enter").alias("action"),
                                          pl.lit("tomorrow is higher").alias("reason")))
'''


def bars_file(tmp_path: Path) -> Path:
    raw = ReplaySource(PROJECT_DATA).bars(["AAPL", "MSFT", "INTC"], "1d", Window.days(date(2009, 8, 21), date(2010, 8, 20)))
    path = tmp_path / "bars.parquet"
    raw.filter(pl.col("problem").is_null()).select(
        "symbol", "ts", "open", "high", "low", "close", "volume"
    ).write_parquet(path)
    return path


@pytest.fixture
def user_path(monkeypatch: pytest.MonkeyPatch, tapeflow_home: Path) -> None:
    monkeypatch.setenv("TAPEFLOW_STRATEGY_PATH", str(EXAMPLES))


def test_without_the_setting_only_the_built_ins_exist(tapeflow_home):
    assert set(available()) == {"sma_cross", "watchlist_momentum", "opening_range", "news_catalyst"}
    with pytest.raises(StrategyNotFound, match=r"unknown strategy 'breakout'; known: .*sma_cross.*TAPEFLOW_STRATEGY_PATH"):
        get_strategy("breakout")


@pytest.mark.usefixtures("user_path")
def test_a_file_outside_the_package_is_listed_with_its_parameters():
    assert "breakout" in available() and "sma_cross" in available()
    result = runner.invoke(app, ["strategies", "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = pl.read_csv(result.stdout.encode()).filter(pl.col("strategy") == "breakout")
    assert rows.select("parameter", "type", "default", "range").rows() == [
        ("entry_bars", "int", 20, "2..250"), ("exit_bars", "int", 10, "2..250"), ("qty", "int", 100, "0..1000000"),
    ]


@pytest.mark.usefixtures("user_path")
def test_a_user_strategy_backtests_and_passes_the_look_ahead_check(tmp_path):
    bars = bars_file(tmp_path)
    fills = tmp_path / "fills.csv"
    result = runner.invoke(app, ["backtest", "breakout", "--bars", str(bars), "-p", "entry_bars=15",
                                 "--fills-out", str(fills)])
    assert result.exit_code == 0, result.output
    traded = pl.read_csv(fills)
    assert traded.height >= 6 and set(traded["side"]) == {"buy", "sell"}
    assert set(traded["symbol"]) <= {"AAPL", "MSFT", "INTC"}
    check = runner.invoke(app, ["check-lookahead", "breakout", "--bars", str(bars), "--cuts", "6"])
    assert check.exit_code == 0, check.output
    bad = runner.invoke(app, ["backtest", "breakout", "--bars", str(bars), "-p", "entry_bars=1"])
    assert bad.exit_code == 2 and "entry_bars must be within 2..250, got 1" in bad.output


def test_a_user_strategy_that_reads_the_future_fails_the_check(tmp_path, monkeypatch, tapeflow_home):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "peek.py").write_text(LEAKY)
    monkeypatch.setenv("TAPEFLOW_STRATEGY_PATH", str(tmp_path / "mine"))
    check = runner.invoke(app, ["check-lookahead", "peeks_ahead", "--bars", str(bars_file(tmp_path)), "--cuts", "6"])
    assert check.exit_code == 1, check.output


def test_a_broken_file_or_a_taken_name_is_refused_with_the_file_named(tmp_path, monkeypatch, tapeflow_home):
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_here\n")
    monkeypatch.setenv("TAPEFLOW_STRATEGY_PATH", str(broken))
    result = runner.invoke(app, ["strategies"])
    assert result.exit_code == 2
    assert "broken.py failed to load: ModuleNotFoundError" in " ".join(result.output.split())
    twin = tmp_path / "twin.py"
    twin.write_text(LEAKY.replace('name = "peeks_ahead"', 'name = "sma_cross"'))
    monkeypatch.setenv("TAPEFLOW_STRATEGY_PATH", str(twin))
    with pytest.raises(ValueError, match=r"two strategies are called 'sma_cross': entry point .* and .*twin.py"):
        available()
    monkeypatch.setenv("TAPEFLOW_STRATEGY_PATH", str(tmp_path / "nowhere.py"))
    with pytest.raises(ValueError, match="neither a .py file nor a folder"):
        available()


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness", "user_path")
def test_the_backtest_flow_runs_a_user_strategy_by_name(warehouse):
    from flows.backtest import backtest
    from flows.ingest import ingest_bars

    ingest_bars(source="replay", symbols=["AAPL", "MSFT"], timeframe="1d", start=date(2009, 8, 21), end=date(2010, 8, 20))
    summary = backtest(strategy="breakout", params={"entry_bars": 15}, symbols=["AAPL", "MSFT"], costs="flat-commission")
    with warehouse.read() as con:
        recorded = con.execute("SELECT strategy, params->>'entry_bars' FROM backtest_runs WHERE run_id = ?",
                               [summary["run_id"]]).fetchone()
        fills = con.execute("SELECT count(*) FROM backtest_fills WHERE run_id = ?", [summary["run_id"]]).fetchone()[0]
    assert recorded == ("breakout", "15") and fills > 0


def test_a_base_class_is_skipped_and_an_incomplete_strategy_is_named(tmp_path, monkeypatch, tapeflow_home):
    shared = LEAKY.replace("class PeeksAhead(Strategy):", "class SharedBase(Strategy):").replace(
        '    name = "peeks_ahead"\n', "")  # a base for others: it has no name of its own
    (tmp_path / "base.py").write_text(shared)
    monkeypatch.setenv("TAPEFLOW_STRATEGY_PATH", str(tmp_path / "base.py"))
    assert "SharedBase" not in {cls.__name__ for cls in available().values()}
    (tmp_path / "half.py").write_text(LEAKY.replace("    timeframe = Timeframe.DAY\n", ""))
    monkeypatch.setenv("TAPEFLOW_STRATEGY_PATH", str(tmp_path / "half.py"))
    result = runner.invoke(app, ["backtest", "sma_cross", "--bars", "x.csv"])
    assert result.exit_code == 2
    assert "strategy PeeksAhead in" in result.stderr and "does not set timeframe" in " ".join(result.stderr.split())
    (tmp_path / "quits.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.setenv("TAPEFLOW_STRATEGY_PATH", str(tmp_path / "quits.py"))
    quits = runner.invoke(app, ["strategies"])
    assert quits.exit_code == 2 and "quits.py failed to load: SystemExit: 3" in " ".join(quits.output.split())


def test_a_parameter_that_is_not_a_number_is_refused_in_one_line(tmp_path, tapeflow_home):
    result = runner.invoke(app, ["check-lookahead", "sma_cross", "-p", "fast=abc", "--bars", "x.csv"])
    assert result.exit_code == 2
    assert "--param fast takes a number, got 'abc'" in " ".join(result.output.split())
    assert "Traceback" not in result.output
