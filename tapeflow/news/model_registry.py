"""Which sentiment models exist: each trained (or configured) model's row in `sentiment_models`,
and the one scoring uses now."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from tapeflow.calendar.exchange import ny_day_bounds
from tapeflow.config import Settings
from tapeflow.news.metrics import Report
from warehouse import Warehouse


class NoSentimentModel(LookupError):
    """Nothing to score with: no model was trained and none is configured."""


def record_model(
    warehouse: Warehouse, *, version: str, base_model: str, path: Path | str, training_data: dict[str, Any],
    params: dict[str, Any], held_out: str, report: Report | None, train_seconds: float | None,
) -> None:
    """Upsert one model's row: a retrained version replaces its own row, never another's."""
    row = [
        version, base_model, str(path), json.dumps(training_data, sort_keys=True), json.dumps(params, sort_keys=True),
        held_out, report.accuracy if report else None, report.macro_f1 if report else None,
        json.dumps(asdict(report), default=str) if report else None, datetime.now(UTC), train_seconds,
    ]
    with warehouse.write() as con:
        con.execute("INSERT OR REPLACE INTO sentiment_models VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)


def latest_trained(con: duckdb.DuckDBPyConnection, before: datetime | None = None) -> tuple[str, str] | None:
    """(version, path) of the most recently trained model (before `before`, when given) whose
    weights are still on disk."""
    rows = con.execute(
        "SELECT version, path FROM sentiment_models WHERE base_model <> 'configured' "
        "AND ($before IS NULL OR trained_at < $before) ORDER BY trained_at DESC", {"before": before}
    ).fetchall()
    return next(((v, p) for v, p in rows if Path(p).exists()), None)


def current_model(settings: Settings, warehouse: Warehouse, *, trained_before: datetime | None = None) -> tuple[str, str]:
    """(version, path) to score with: TAPEFLOW_SENTIMENT_MODEL when set, else the latest trained
    (before `trained_before`, when given and one was; else the latest of all)."""
    if settings.sentiment_model:
        return configured_model(settings.sentiment_model, warehouse)
    try:
        with warehouse.read() as con:
            found = (latest_trained(con, trained_before) if trained_before else None) or latest_trained(con)
    except FileNotFoundError:
        found = None
    if found is None:
        raise NoSentimentModel(
            "no sentiment model: train one with `tapeflow nlp train` (or `--subset 2500 --epochs 1 "
            "--learning-rate 1.5e-4` for a quick one), or set TAPEFLOW_SENTIMENT_MODEL to a Hugging Face id or local path"
        )
    return found


def day_model(settings: Settings, warehouse: Warehouse, day: date) -> tuple[str, str]:
    """The model a trading day's sessions read headlines with: the one current when the New
    York day began, so a model trained during the day takes over the next day, not mid-session."""
    return current_model(settings, warehouse, trained_before=ny_day_bounds(day)[0])


def configured_model(name: str, warehouse: Warehouse) -> tuple[str, str]:
    """A recorded version, the folder of a recorded model, or another model, which is recorded
    under a version of its own: a local folder's name and its weights' digest (new weights in
    the same folder are a new version), or a Hugging Face id as it is."""
    name = name.rstrip("/")
    folder = Path(name).expanduser()
    with warehouse.write() as con:
        row = con.execute("SELECT version, path FROM sentiment_models WHERE version = ? OR "
                          "(path = ? AND base_model <> 'configured')",
                          [name, str(folder.resolve()) if folder.is_dir() else name]).fetchone()
        if row:
            return row[0], row[1]
        if folder.is_dir():
            version, path = f"{folder.resolve().name}-{_weights_digest(folder)}", str(folder.resolve())
        else:
            version, path = name, name
        known = con.execute("SELECT 1 FROM sentiment_models WHERE version = ?", [version]).fetchone()
    if not known:
        record_model(warehouse, version=version, base_model="configured", path=path, training_data={}, params={},
                     held_out="not evaluated (tapeflow nlp eval --model VERSION)", report=None, train_seconds=None)
    return version, path


def _weights_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        with weights.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:10]


def has_model(settings: Settings, warehouse: Warehouse) -> bool:
    """Whether headlines can be scored now without training first."""
    try:
        current_model(settings, warehouse)
    except NoSentimentModel:
        return False
    return True
