"""`tapeflow archive bars|status`: months moved and listed, `tapeflow sql` reading archived and
live bars through `bars_all`, and one-line refusals of a bad cut-off."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
from typer.testing import CliRunner

from tapeflow.cli.main import EXIT_REFUSED, app
from tapeflow.model import Timeframe
from tests.parity_kit import store_bundled_bars

runner = CliRunner()


@pytest.fixture
def minutes(warehouse):
    store_bundled_bars(warehouse, Timeframe.MINUTE, ["SPY"], date(2011, 1, 3), date(2011, 3, 31))
    return warehouse


def rows(result) -> list[dict[str, str]]:
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_archived_months_are_listed_and_sql_reads_them_with_the_live_ones(minutes, settings):
    by_month = "SELECT month, count(*) AS n FROM bars_all WHERE timeframe = '1m' GROUP BY month ORDER BY month"
    before = rows(runner.invoke(app, ["sql", by_month, "-f", "csv"]))

    moved = runner.invoke(app, ["archive", "bars", "--timeframe", "1m", "--before", "2011-03-01"])
    assert moved.exit_code == 0, moved.output
    assert "│ 2011-01 " in moved.stdout and "│ 2011-02 " in moved.stdout and "│ 2011-03 " not in moved.stdout

    assert rows(runner.invoke(app, ["sql", by_month, "-f", "csv"])) == before
    assert [r["month"] for r in before] == ["2011-01", "2011-02", "2011-03"]
    left = rows(runner.invoke(app, ["sql", "SELECT min(ts) AS oldest FROM bars WHERE timeframe = '1m'", "-f", "csv"]))
    assert datetime.fromisoformat(left[0]["oldest"]) >= datetime(2011, 3, 1, tzinfo=UTC)

    status = rows(runner.invoke(app, ["archive", "status", "-f", "csv"]))
    assert [(r["timeframe"], r["month"], r["rows"]) for r in status] == [
        ("1m", r["month"], r["n"]) for r in before[:2]]
    assert all(int(r["bytes"]) > 0 for r in status)
    assert (settings.archive_path / "timeframe=1m" / "month=2011-01" / "bars.parquet").is_file()

    again = runner.invoke(app, ["archive", "bars", "--timeframe", "1m", "--before", "2011-03"])
    assert again.exit_code == 0 and "nothing to move" in again.stdout


def test_an_empty_archive_says_how_to_fill_it(minutes):
    result = runner.invoke(app, ["archive", "status"])
    assert result.exit_code == 0 and "holds no bars yet" in result.stdout and "tapeflow archive bars" in result.stdout


@pytest.mark.parametrize(("before", "says"), [
    ("2011-03-15", "whole months move"),
    ("March", "a month (YYYY-MM)"),
    ("2999-01", "or earlier"),
])
def test_a_bad_cut_off_is_refused_in_one_line(minutes, before, says):
    result = runner.invoke(app, ["archive", "bars", "--timeframe", "1m", "--before", before])
    assert result.exit_code == EXIT_REFUSED
    assert says in result.stderr and "--before" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (minutes.archive / "timeframe=1m").exists()


def test_no_warehouse_is_refused_in_one_line(settings):
    result = runner.invoke(app, ["archive", "bars", "--timeframe", "1d", "--before", "2010-01"])
    assert result.exit_code == EXIT_REFUSED and "no warehouse at" in result.stderr
