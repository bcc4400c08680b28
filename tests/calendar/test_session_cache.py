"""The session table kept on disk: the same sessions as the library's, without importing it."""

from __future__ import annotations

import subprocess
import sys

from tapeflow.calendar.exchange import ExchangeCalendar


def test_a_second_calendar_reads_the_table_the_first_wrote(tmp_path, monkeypatch):
    monkeypatch.setenv("TAPEFLOW_CALENDAR_CACHE", str(tmp_path))
    built = ExchangeCalendar(start="2020-01-01", end="2021-12-31")
    [table] = list((tmp_path / "calendars").iterdir())
    read = ExchangeCalendar(start="2020-01-01", end="2021-12-31")
    assert read.sessions("2020-01-01", "2021-12-31") == built.sessions("2020-01-01", "2021-12-31")
    assert read.session("2020-11-27").early_close and read.session("2020-11-27").close.hour == 18  # 13:00 New York
    assert read.closure("2020-12-25") == "Christmas"  # the library, on demand
    table.write_bytes(b"not parquet")  # a damaged table is built again
    assert ExchangeCalendar(start="2020-01-01", end="2021-12-31").sessions("2021-03-01", "2021-03-05") == \
        built.sessions("2021-03-01", "2021-03-05")


def test_with_the_table_on_disk_exchange_calendars_is_not_imported(tmp_path):
    code = ("from tapeflow.calendar.exchange import ExchangeCalendar; import sys; "
            "c = ExchangeCalendar(start='2020-01-01', end='2020-12-31'); "
            "print(len(c.sessions('2020-01-01', '2020-12-31')), 'exchange_calendars' in sys.modules)")
    env = {"TAPEFLOW_CALENDAR_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert first.stdout.split() == ["253", "True"]
    assert second.stdout.split() == ["253", "False"]


def test_an_empty_cache_setting_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("TAPEFLOW_CALENDAR_CACHE", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    ExchangeCalendar(start="2020-01-01", end="2020-12-31")
    assert not any(tmp_path.rglob("*.parquet"))
