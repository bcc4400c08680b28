"""Results handed back from a compute machine land in the warehouse exactly as a direct
recording would write them: every table, every value, to the cent; a folder outside the handoff
root, half-written or tampered with is refused; the `record-results` flow records what waits."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from strategies.opening_range import OpeningRangeBreakout
from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import cost_preset
from tapeflow.backtest.handoff import MANIFEST, HandoffError, read_handoff, waiting_handoffs, write_handoff
from tapeflow.backtest.run import run_backtest
from tapeflow.backtest.runs import RUN_TABLES, RunRows, run_rows, store_runs
from tapeflow.config import PROJECT_DATA, Settings
from tapeflow.sources.base import Window
from tapeflow.sources.replay import ReplaySource
from tapeflow.strategy.history import BAR_COLUMNS, History
from warehouse.connection import Warehouse

WINDOW = (datetime(2011, 3, 1, 5, tzinfo=UTC), datetime(2011, 3, 5, 5, tzinfo=UTC))


@pytest.fixture(scope="module")
def runs() -> list[RunRows]:
    """An opening-range backtest on the bundled SPY minutes (fills, trades, orders) and a copy as a fold."""
    raw = ReplaySource(PROJECT_DATA).bars(["SPY"], "1m", Window(*WINDOW))
    history = History(bars=raw.filter(pl.col("problem").is_null()).select(*BAR_COLUMNS))
    run = run_backtest(OpeningRangeBreakout(), history, BacktestConfig(costs=cost_preset("retail-default")))
    assert run.result.fills.height > 0
    described = {"kind": "walk_forward", "timeframe": "1m", "window": WINDOW, "data_snapshot": {"bars": 1}}
    return [run_rows("wf", run, **described),
            run_rows("wf-fold0", run, **{**described, "kind": "walk_forward_fold"}, parent_run_id="wf", fold=0)]


def tables(warehouse: Warehouse) -> dict[str, pl.DataFrame]:
    with warehouse.read() as con:
        return {table: con.sql(f"SELECT * FROM {table} ORDER BY ALL").pl() for table in RUN_TABLES}


def test_a_handed_back_run_is_recorded_exactly_as_a_direct_one(runs, tmp_path: Path):
    direct, handed = Warehouse(tmp_path / "direct.duckdb"), Warehouse(tmp_path / "handed.duckdb")
    store_runs(direct, runs)
    folder = write_handoff(tmp_path / "handoff", runs)
    store_runs(handed, read_handoff(tmp_path / "handoff", folder))
    expected, got = tables(direct), tables(handed)
    assert all(expected[table].height for table in RUN_TABLES), {t: f.height for t, f in expected.items()}
    for table in RUN_TABLES:
        assert_frame_equal(got[table], expected[table])


def test_recording_a_handoff_twice_keeps_one_copy(runs, tmp_path: Path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    folder = write_handoff(tmp_path / "handoff", runs)
    store_runs(warehouse, read_handoff(tmp_path / "handoff", folder))
    once = tables(warehouse)
    store_runs(warehouse, read_handoff(tmp_path / "handoff", folder))
    assert {t: f.height for t, f in tables(warehouse).items()} == {t: f.height for t, f in once.items()}


def test_a_folder_outside_the_root_half_written_or_altered_is_refused(runs, tmp_path: Path):
    root = tmp_path / "handoff"
    folder = write_handoff(root, runs)
    with pytest.raises(HandoffError, match="not under the handoff folder"):
        read_handoff(tmp_path / "elsewhere", folder)
    (root / ".abc.partial").mkdir()
    assert waiting_handoffs(root) == [folder]  # a partial one is still being written
    with pytest.raises(HandoffError, match="not a complete handoff"):
        read_handoff(root, root / ".abc.partial")
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / manifest[0]["folder"] / "backtest_trades.parquet").unlink()
    with pytest.raises(HandoffError, match="manifest says"):
        read_handoff(root, folder)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_the_record_results_flow_records_every_waiting_folder_once(runs, settings: Settings, warehouse: Warehouse):
    from flows.record_results import record_results

    first = write_handoff(settings.handoff_path, runs[:1])
    second = write_handoff(settings.handoff_path, runs[1:])
    result = record_results()
    assert result["folders"] == 2 and sorted(result["runs"]) == ["wf", "wf-fold0"]
    assert not first.exists() and not second.exists()
    with warehouse.read() as con:
        assert con.execute("SELECT count(*) FROM backtest_runs WHERE run_id IN ('wf', 'wf-fold0')").fetchone() == (2,)
    assert record_results()["folders"] == 0
