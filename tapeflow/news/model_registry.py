"""Which sentiment models exist (each trained or configured model's row in `sentiment_models`)
and which one is current (the latest of the choices in `sentiment_choices`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import duckdb

from tapeflow.calendar.exchange import ny_day_bounds
from tapeflow.config import Settings
from tapeflow.news.metrics import Report
from warehouse import Warehouse

CONFIGURED = "configured"
"""The base_model of a model tapeflow did not train (TAPEFLOW_SENTIMENT_MODEL, `nlp eval --model`)."""


class NoSentimentModel(LookupError):
    """Nothing to score with: no model is current and none is configured."""


class ChoiceReason(StrEnum):
    """Why a model became current."""

    BEAT_CURRENT = "beat-current"  # trained, and beat the current model on the same held-out sentences
    MAKE_CURRENT = "make-current"  # trained with --make-current
    USE = "use"  # `tapeflow nlp use VERSION`
    LATEST_TRAINED = "latest-trained"  # trained before choices were recorded (migration 0010)


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


def choose_model(warehouse: Warehouse, version: str, reason: ChoiceReason, at: datetime | None = None) -> None:
    """Make a recorded model current from `at` (default now)."""
    with warehouse.write() as con:
        if con.execute("SELECT 1 FROM sentiment_models WHERE version = ?", [version]).fetchone() is None:
            raise LookupError(f"no sentiment model {version!r} is recorded")
        con.execute("INSERT INTO sentiment_choices VALUES (?, ?, ?)", [at or datetime.now(UTC), version, reason.value])


def weights_present(path: str, base_model: str) -> bool:
    """Whether a model can still be loaded: a trained model's folder is still on disk (a
    configured Hugging Face id lives in the cache, and loading it says when it is not)."""
    return base_model == CONFIGURED or Path(path).exists()


def chosen_model(con: duckdb.DuckDBPyConnection, before: datetime | None = None) -> tuple[str, str] | None:
    """(version, path) of the latest choice (made before `before`, when given) whose weights
    are still there: a model whose folder was deleted hands over to the one chosen before it."""
    rows = con.execute(
        "SELECT c.version, m.path, m.base_model FROM sentiment_choices c JOIN sentiment_models m USING (version) "
        "WHERE $before IS NULL OR c.chosen_at < $before ORDER BY c.chosen_at DESC", {"before": before}
    ).fetchall()
    return next(((v, p) for v, p, base in rows if weights_present(p, base)), None)


def current_model(settings: Settings, warehouse: Warehouse, *, chosen_before: datetime | None = None) -> tuple[str, str]:
    """(version, path) to score with: TAPEFLOW_SENTIMENT_MODEL when set, else the latest chosen
    (before `chosen_before`, when given and one was; else the latest of all)."""
    if settings.sentiment_model:
        return configured_model(settings.sentiment_model, warehouse)
    try:
        found, recorded = _lookup(warehouse, chosen_before)
    except duckdb.CatalogException:  # a warehouse from before sentiment_choices: a write migrates it
        with warehouse.write():
            pass
        found, recorded = _lookup(warehouse, chosen_before)
    except FileNotFoundError:
        found, recorded = None, 0
    if found is None:
        raise NoSentimentModel(
            ("no sentiment model is current: choose one with `tapeflow nlp use VERSION` (`tapeflow nlp models` "
             "lists them), or train one with `tapeflow nlp train`") if recorded else
            ("no sentiment model: train one with `tapeflow nlp train` (or `--subset 2500 --epochs 1 "
             "--learning-rate 1.5e-4` for a quick one), or set TAPEFLOW_SENTIMENT_MODEL to a Hugging Face id or local path")
        )
    return found


def _lookup(warehouse: Warehouse, before: datetime | None) -> tuple[tuple[str, str] | None, int]:
    """The chosen model (before `before`, else the latest) and how many models are recorded."""
    with warehouse.read() as con:
        found = (chosen_model(con, before) if before else None) or chosen_model(con)
        (recorded,) = con.execute("SELECT count(*) FROM sentiment_models").fetchall()[0]
        return found, recorded


def day_model(settings: Settings, warehouse: Warehouse, day: date) -> tuple[str, str]:
    """The model a trading day's sessions read headlines with: the one current when the New
    York day began, so a model made current during the day takes over the next day, not mid-session."""
    return current_model(settings, warehouse, chosen_before=ny_day_bounds(day)[0])


def configured_model(name: str, warehouse: Warehouse) -> tuple[str, str]:
    """A recorded version, the folder of a recorded model, or another model, which is recorded
    under a version of its own: a local folder's name and its weights' digest (new weights in
    the same folder are a new version), or a Hugging Face id as it is."""
    name = name.rstrip("/")
    folder = Path(name).expanduser()
    with warehouse.write() as con:
        row = con.execute("SELECT version, path FROM sentiment_models WHERE version = ? OR "
                          "(path = ? AND base_model <> ?)",
                          [name, str(folder.resolve()) if folder.is_dir() else name, CONFIGURED]).fetchone()
        if row:
            return row[0], row[1]
        if folder.is_dir():
            version, path = f"{folder.resolve().name}-{weights_digest(folder)}", str(folder.resolve())
        else:
            version, path = name, name
        known = con.execute("SELECT 1 FROM sentiment_models WHERE version = ?", [version]).fetchone()
    if not known:
        record_model(warehouse, version=version, base_model=CONFIGURED, path=path, training_data={}, params={},
                     held_out="not evaluated (tapeflow nlp eval --model VERSION)", report=None, train_seconds=None)
    return version, path


def weights_digest(folder: Path) -> str:
    """The first 10 hex digits of the SHA-256 over the folder's weight files."""
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
