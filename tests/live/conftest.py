"""Fixtures the session tests share."""

from __future__ import annotations

from pathlib import Path

import pytest

from tapeflow.cli.console import err, out
from tapeflow.config import load_settings
from tests.crash_kit import AFTERNOON_STRATEGY, store_afternoon
from tests.session_kit import DAY
from warehouse import open_warehouse


@pytest.fixture
def afternoon(tapeflow_home, tmp_path, monkeypatch) -> Path:
    """The afternoon strategy as a user's file, and its day in the main warehouse; returns the
    file a replay of the day runs in."""
    mine = tmp_path / "mine.py"
    mine.write_text(AFTERNOON_STRATEGY)
    monkeypatch.setenv("TAPEFLOW_STRATEGY_PATH", str(mine))
    store_afternoon(open_warehouse(load_settings()))
    return tapeflow_home / "replays" / f"afternoon-{DAY.isoformat()}.duckdb"


@pytest.fixture
def columns_80(monkeypatch):
    """An 80-column terminal: the consoles were sized when the CLI was imported."""
    monkeypatch.setenv("COLUMNS", "80")
    for console in (out, err):
        monkeypatch.setattr(console, "width", 80)
