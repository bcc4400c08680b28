"""Record what a compute machine handed back: the runs' Parquet rows, into the warehouse,
in one transaction. Runs in the warehouse pool, the only one that writes the DuckDB file."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.hooks import alert_on_failure
from flows.parameters import UNSET, OptionalName
from tapeflow.backtest.handoff import read_handoff, remove_handoff, waiting_handoffs
from tapeflow.config import load_settings
from tasks.backtest import record


@flow(name="record-results", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def record_results(folder: OptionalName = UNSET) -> dict[str, object]:
    """Record a handoff folder's runs (backtests, walk-forward folds, perturbations), then remove it;
    without a folder, every complete one waiting (what a failed recording left).

    Args:
        folder: The handoff folder a compute run wrote, under TAPEFLOW_HANDOFF_DIR; blank: all waiting.
    """
    root = load_settings().handoff_path
    folders = [Path(folder)] if folder else waiting_handoffs(root)
    recorded: list[str] = []
    rows = 0
    for one in folders:
        runs = read_handoff(root, one)
        record(runs)
        remove_handoff(one)
        recorded += [run.run_id for run in runs]
        rows += sum(frame.height for run in runs for frame in run.tables.values())
        get_run_logger().info("recorded %d run(s) from %s", len(runs), one)
    return {"folders": len(folders), "runs": recorded, "rows": rows}
