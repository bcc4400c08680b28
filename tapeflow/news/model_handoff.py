"""A model trained on a compute machine, handed back: its folder (weights, tokenizer) under the
handoff folder, completed by `trained.json` (what `sentiment_models` records about it), which the
warehouse pool's `adopt-model` flow reads to record and judge it."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tapeflow.news.metrics import ClassScores, Report
from tapeflow.news.sentiment import TrainedModel, TrainParams

TRAINED = "trained.json"
MODELS = "models"


class ModelHandoffError(ValueError):
    """A model folder outside the handoff root, or without its trained.json."""


def model_handoff_dir(root: Path, version: str) -> Path:
    """Where a compute machine trains `version`, so that the warehouse machine can take it."""
    return root / MODELS / version


def write_trained(model: TrainedModel, data: dict[str, Any]) -> None:
    """Complete a handed-back model folder: what it is, written last and whole."""
    partial = model.path / f".{TRAINED}.partial"
    partial.write_text(json.dumps({"version": model.version, "params": asdict(model.params),
                                   "held_out": asdict(model.held_out), "train_seconds": model.train_seconds,
                                   "data": data}, default=str))
    partial.rename(model.path / TRAINED)


def read_trained(root: Path, folder: Path) -> tuple[TrainedModel, dict[str, Any]]:
    """The handed-back model in `folder` (under `root`), and the training data it recorded."""
    folder = folder.resolve()
    if not folder.is_relative_to(root.resolve()):
        raise ModelHandoffError(f"{folder} is not under the handoff folder {root}; set TAPEFLOW_HANDOFF_DIR to "
                                "storage both pools see")
    if not (folder / TRAINED).is_file():
        raise ModelHandoffError(f"{folder} is not a complete handed-back model (no {TRAINED}); was it adopted already?")
    saved = json.loads((folder / TRAINED).read_text())
    report = saved["held_out"]
    held_out = Report(labels=tuple(report["labels"]), accuracy=report["accuracy"], macro_f1=report["macro_f1"],
                      per_class={label: ClassScores(**scores) for label, scores in report["per_class"].items()},
                      confusion=tuple(tuple(row) for row in report["confusion"]), n=report["n"])
    model = TrainedModel(version=saved["version"], path=folder, params=TrainParams(**saved["params"]),
                         held_out=held_out, train_seconds=saved["train_seconds"])
    return model, saved["data"]


def waiting_models(root: Path) -> list[Path]:
    """Handed-back model folders not adopted yet, oldest first."""
    folder = root / MODELS
    done = [path for path in folder.iterdir() if (path / TRAINED).is_file()] if folder.is_dir() else []
    return sorted(done, key=lambda path: (path / TRAINED).stat().st_mtime)


def move_into(model: TrainedModel, models_dir: Path) -> TrainedModel:
    """The model moved from the handoff folder to this machine's models folder (replacing a copy)."""
    target = models_dir / model.version
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(model.path, target, ignore=shutil.ignore_patterns(TRAINED))
    shutil.rmtree(model.path)
    return TrainedModel(version=model.version, path=target, params=model.params, held_out=model.held_out,
                        train_seconds=model.train_seconds)
