"""A sentiment model trained on a compute machine and handed back: what it is survives the trip
through trained.json; a folder outside the handoff root or without it is refused; the
`adopt-model` flow moves it into the warehouse machine's models, records it and can make it current."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tapeflow.config import Settings
from tapeflow.news.metrics import classification_report
from tapeflow.news.model_handoff import (
    TRAINED,
    ModelHandoffError,
    model_handoff_dir,
    read_trained,
    waiting_models,
    write_trained,
)
from tapeflow.news.sentiment import TrainedModel, TrainParams
from tapeflow.news.sentiment_data import LABELS
from tapeflow.news.sentiment_sources import training_sets
from warehouse.connection import Warehouse

SUBSET, HELD_OUT_LIMIT = 24, 12


def handed_back(tiny: Path, root: Path, settings: Settings) -> tuple[TrainedModel, dict]:
    """A tiny classifier placed as a compute machine leaves a trained model, with its trained.json."""
    _, held_out, data = training_sets(settings.data_dir, SUBSET, HELD_OUT_LIMIT, 0)
    version = "tiny-handed-back"
    folder = model_handoff_dir(root, version)
    shutil.copytree(tiny, folder)
    truth = [example.label for example in held_out]
    report = classification_report(truth, list(reversed(truth)), LABELS)
    model = TrainedModel(version=version, path=folder, params=TrainParams(epochs=1, seed=0), held_out=report,
                         train_seconds=1.5)
    write_trained(model, data)
    return model, data


def test_a_handed_back_model_reads_back_as_it_was_written(tiny_classifiers, settings: Settings):
    root = settings.handoff_path
    model, data = handed_back(tiny_classifiers[0], root, settings)
    assert waiting_models(root) == [model.path]
    read, read_data = read_trained(root, model.path)
    assert read == model
    assert read_data == json.loads(json.dumps(data, default=str))


def test_a_model_outside_the_root_or_without_trained_json_is_refused(tiny_classifiers, settings: Settings, tmp_path):
    root = settings.handoff_path
    model, _ = handed_back(tiny_classifiers[0], root, settings)
    with pytest.raises(ModelHandoffError, match="not under the handoff folder"):
        read_trained(tmp_path / "elsewhere", model.path)
    (model.path / TRAINED).unlink()  # still being written, or adopted already
    assert waiting_models(root) == []
    with pytest.raises(ModelHandoffError, match="not a complete handed-back model"):
        read_trained(root, model.path)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_the_adopt_model_flow_takes_records_and_makes_the_model_current(tiny_classifiers, settings: Settings,
                                                                        warehouse: Warehouse):
    from flows.nlp import adopt_model

    model, _ = handed_back(tiny_classifiers[1], settings.handoff_path, settings)
    result = adopt_model(make_current=True)
    [adopted] = result["models"]
    assert adopted["version"] == model.version and adopted["current"] is True
    kept = settings.home.resolve() / "models" / model.version
    assert (kept / "config.json").is_file() and not (kept / TRAINED).exists()
    assert not model.path.exists()
    with warehouse.read() as con:
        row = con.execute("SELECT path, macro_f1 FROM sentiment_models WHERE version = ?", [model.version]).fetchone()
    assert row == (str(kept), pytest.approx(model.held_out.macro_f1))
    assert adopt_model()["models"] == []  # nothing left waiting
