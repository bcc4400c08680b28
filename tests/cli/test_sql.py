"""`tapeflow sql`: read-only queries, output formats, refused writes, a busy warehouse."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from tapeflow.cli.main import EXIT_BUSY, EXIT_REFUSED, app
from tests.warehouse_lock import lock_held
from tests.warehouse_rows import T0, bars, stamped
from warehouse.upsert import upsert

runner = CliRunner()


@pytest.fixture
def filled(warehouse):
    with warehouse.write() as con:
        upsert(con, "bars", stamped(bars(3, close=10.0), T0), ("symbol", "timeframe", "ts"))
        upsert(con, "bars", stamped(bars(2, close=20.0, symbol="IWM"), T0), ("symbol", "timeframe", "ts"))
    return warehouse


def count(warehouse) -> int:
    with warehouse.read() as con:
        return con.execute("SELECT count(*) FROM bars").fetchone()[0]


def test_select_prints_a_table(filled):
    result = runner.invoke(app, ["sql", "SELECT symbol, count(*) AS n FROM bars GROUP BY symbol ORDER BY symbol"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "IWM" in line or "SPY" in line]
    assert len(lines) == 2 and "2" in lines[0] and "3" in lines[1]
    assert "2 rows" in result.output


def test_csv_and_json_formats(filled):
    query = "SELECT symbol, count(*) AS n, max(close) AS top FROM bars GROUP BY symbol ORDER BY symbol"
    as_csv = runner.invoke(app, ["sql", query, "--format", "csv"])
    assert as_csv.exit_code == 0
    assert list(csv.DictReader(io.StringIO(as_csv.stdout))) == [
        {"symbol": "IWM", "n": "2", "top": "20.0"},
        {"symbol": "SPY", "n": "3", "top": "10.0"},
    ]
    as_json = runner.invoke(app, ["sql", query, "-f", "json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == [{"symbol": "IWM", "n": 2, "top": 20.0}, {"symbol": "SPY", "n": 3, "top": 10.0}]


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO bars SELECT * FROM bars",
        "DELETE FROM bars",
        "UPDATE bars SET close = 0",
        "DROP TABLE bars",
        "CREATE TABLE x AS SELECT 1",
        "COPY bars TO 'out.csv'",
        "ATTACH 'other.duckdb'",
        "SELECT 1; DELETE FROM bars",
        "EXPLAIN ANALYZE COPY (SELECT 1) TO 'out.csv'",
        "explain   analyse DELETE FROM bars",
    ],
)
def test_writes_are_refused_and_nothing_changes(filled, statement):
    result = runner.invoke(app, ["sql", statement])
    assert result.exit_code == EXIT_REFUSED
    assert "only reads" in result.stderr
    assert count(filled) == 5


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_csv('{secret}')",
        "SELECT * FROM read_text('{secret}')",
        "SELECT * FROM glob('{dir}/*')",
        "WITH gone AS (DELETE FROM bars RETURNING *) SELECT count(*) FROM gone",
        "SELECT * FROM read_json_auto('http://127.0.0.1:9/x.json')",
    ],
)
def test_reads_outside_the_warehouse_are_blocked(filled, tmp_path, query):
    secret = tmp_path / "secret.csv"
    secret.write_text("token\nhunter2\n")
    result = runner.invoke(app, ["sql", query.format(secret=secret, dir=tmp_path)])
    assert result.exit_code == 1
    assert "hunter2" not in result.output and "secret.csv" not in result.stdout
    assert count(filled) == 5


def test_settings_cannot_be_unlocked(filled):
    query = "SELECT current_setting('enable_external_access') AS ext, current_setting('TimeZone') AS tz"
    result = runner.invoke(app, ["sql", query, "-f", "csv"])
    assert result.stdout.splitlines() == ["ext,tz", "false,UTC"]


def test_sql_errors_are_reported_plainly(filled):
    result = runner.invoke(app, ["sql", "SELECT * FROM no_such_table"])
    assert result.exit_code == 1
    assert "no_such_table" in result.stderr and "Traceback" not in result.output


def test_missing_warehouse(settings):
    result = runner.invoke(app, ["sql", "SELECT 1"])
    assert result.exit_code == 1
    assert "no warehouse at" in result.stderr and "tapeflow demo" in result.stderr


@pytest.mark.slow
def test_busy_warehouse_retries_then_gives_up(filled, monkeypatch):
    monkeypatch.setenv("TAPEFLOW_LOCK_TIMEOUT_S", "1")
    with lock_held(filled.path, 30):
        result = runner.invoke(app, ["sql", "SELECT count(*) FROM bars"])
    assert result.exit_code == EXIT_BUSY
    assert "warehouse busy" in result.stderr and "retrying for up to 1 s" in result.stderr
    assert "gave up after 1 s" in result.stderr


@pytest.mark.slow
def test_busy_warehouse_answers_once_released(filled, monkeypatch):
    monkeypatch.setenv("TAPEFLOW_LOCK_TIMEOUT_S", "20")
    with lock_held(filled.path, 1.5):
        result = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM bars", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "retrying" in result.stderr
    assert result.stdout.splitlines() == ["n", "5"]
