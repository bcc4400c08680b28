"""Results a compute machine hands back: each run's rows as Parquet files in one folder that
the warehouse pool records (flow `record-results`). A folder appears whole or not at all."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from uuid import uuid4

import polars as pl

from tapeflow.backtest.runs import RUN_TABLES, RunRows

MANIFEST = "manifest.json"


class HandoffError(ValueError):
    """A handoff folder that is missing, incomplete or outside the handoff root."""


def write_handoff(root: Path, runs: Sequence[RunRows]) -> Path:
    """Write the runs' rows under a new folder of `root` and return it (renamed into place when complete)."""
    name = uuid4().hex
    partial = root / f".{name}.partial"
    partial.mkdir(parents=True)
    manifest = []
    for index, run in enumerate(runs):
        folder = partial / f"{index:04d}"
        folder.mkdir()
        for table, frame in run.tables.items():
            frame.write_parquet(folder / f"{table}.parquet")
        manifest.append({"run_id": run.run_id, "folder": folder.name, "rows": {t: f.height for t, f in run.tables.items()}})
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=1))
    done = root / name
    partial.rename(done)
    return done


def read_handoff(root: Path, folder: Path) -> list[RunRows]:
    """The runs of a handoff folder under `root`, checked against its manifest."""
    folder = folder.resolve()
    if not folder.is_relative_to(root.resolve()):
        raise HandoffError(f"{folder} is not under the handoff folder {root}; set TAPEFLOW_HANDOFF_DIR to storage "
                           "both pools see")
    if not (folder / MANIFEST).is_file():
        raise HandoffError(f"{folder} is not a complete handoff (no {MANIFEST}); was it already recorded?")
    runs = []
    for entry in json.loads((folder / MANIFEST).read_text()):
        tables = {path.stem: pl.read_parquet(path) for path in sorted((folder / entry["folder"]).glob("*.parquet"))}
        counts = {table: frame.height for table, frame in tables.items()}
        if counts != entry["rows"] or not set(tables) <= set(RUN_TABLES):
            raise HandoffError(f"{folder}: run {entry['run_id']} has rows {counts}, its manifest says {entry['rows']}")
        runs.append(RunRows(entry["run_id"], tables))
    return runs


def waiting_handoffs(root: Path) -> list[Path]:
    """The complete handoff folders under `root`, oldest first (a partial one is still being written)."""
    if not root.is_dir():
        return []
    done = [path for path in root.iterdir() if path.is_dir() and (path / MANIFEST).is_file()]
    return sorted(done, key=lambda path: path.stat().st_mtime)


def remove_handoff(folder: Path) -> None:
    """Delete a recorded handoff folder."""
    shutil.rmtree(folder, ignore_errors=True)
