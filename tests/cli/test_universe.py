"""`tapeflow universe show` and `tapeflow backtest --universe` from the command line; bad input
is refused in one line (exit 2) before Prefect starts. The flow behind `universe load` is in
tests/flows/test_universe.py."""

from __future__ import annotations

import polars as pl
import pytest
from typer.testing import CliRunner

from tapeflow.cli.main import app
from tests.flows.test_backtest import bars_file
from tests.universe_kit import store_bundled

runner = CliRunner()


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def bundled(warehouse):
    store_bundled(warehouse)
    return warehouse


def test_show_prints_the_description_and_survivorship_from_the_table(bundled):
    result = runner.invoke(app, ["universe", "show", "sp500-2010"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "sp500-2010: S&P 500 members as of a 2010 snapshot (survivorship-biased)"
    assert lines[1].startswith("survivorship: survivorship_biased (")
    assert lines[2] == "source: replay; 524 symbols in 524 membership intervals, the first from 2009-08-21"


def test_show_on_a_day_lists_that_days_members(bundled):
    result = runner.invoke(app, ["universe", "show", "sp500-2010", "--on", "2009-08-21"])
    assert result.exit_code == 0, result.output
    assert "members on 2009-08-21: 499" in result.stdout
    listed = result.stdout.split("members on 2009-08-21: 499", 1)[1].split()
    assert len(listed) == 499 and "AAPL" in listed and "BRK.B" not in listed  # BRK.B joins the panel on 2010-03-01
    later = runner.invoke(app, ["universe", "show", "sp500-2010", "--on", "2010-03-01"])
    assert "members on 2010-03-01: " in later.stdout and "BRK.B" in later.stdout.split()


@pytest.mark.parametrize("argv", [["universe", "show", "nope"], ["backtest", "sma_cross", "--universe", "nope"]])
def test_an_unknown_universe_is_refused_in_one_line(bundled, argv):
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    line = one_line(result.stderr)
    assert "no universe 'nope' in the warehouse; known: sp500-2010" in line and "tapeflow universe load" in line


def test_a_universe_without_a_warehouse_is_refused_in_one_line(tapeflow_home):
    result = runner.invoke(app, ["backtest", "sma_cross", "--universe", "sp500-2010"])
    assert result.exit_code == 2, result.output
    assert one_line(result.stderr) == ("--universe: no universe 'sp500-2010': there is no warehouse yet "
                                       "(the bundled one loads with `tapeflow universe load`)")


def test_load_refuses_a_folder_without_records_before_prefect_starts(tapeflow_home, tmp_path):
    result = runner.invoke(app, ["universe", "load", "--folder", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert one_line(result.stderr).startswith(f"--folder: no universes.csv in {tmp_path}")


def test_backtest_on_a_file_keeps_to_the_universe(bundled, tmp_path):
    path = bars_file(tmp_path)
    # MSFT's bars under a name the universe never held.
    pl.read_parquet(path).with_columns(pl.col("symbol").replace("MSFT", "ZZZZ")).write_parquet(path)
    fills = tmp_path / "fills.csv"
    args = ["backtest", "sma_cross", "--bars", str(path), "-p", "fast=5", "-p", "slow=20", "--fills-out", str(fills)]
    free = runner.invoke(app, args)
    assert free.exit_code == 0, free.output
    assert set(pl.read_csv(fills)["symbol"]) == {"AAPL", "ZZZZ"}
    scoped = runner.invoke(app, [*args, "--universe", "sp500-2010"])
    assert scoped.exit_code == 0, scoped.output
    assert set(pl.read_csv(fills)["symbol"]) == {"AAPL"}
