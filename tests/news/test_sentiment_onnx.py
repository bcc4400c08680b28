"""The ONNX Runtime path against the transformers reference: the same headlines scored both
ways give the same labels; the export is made once beside the weights and made again when
the weights change."""

from __future__ import annotations

import shutil

import pytest

from tapeflow.config import PROJECT_DATA
from tapeflow.model import Runtime
from tapeflow.news.sentiment import SentimentModel
from tapeflow.news.sentiment_data import load_split
from tapeflow.news.sentiment_onnx import onnx_path

HEADLINES = [e.text for e in load_split("valid", PROJECT_DATA)[:120]]


@pytest.fixture(scope="module")
def tiny(tiny_classifiers, tmp_path_factory):
    """A copy of a tiny classifier: the exports it gains stay out of the shared fixture."""
    folder = tmp_path_factory.mktemp("onnx") / "tiny"
    shutil.copytree(tiny_classifiers[0], folder)
    return folder


def test_onnx_scores_as_the_transformers_reference(tiny):
    reference = SentimentModel(tiny, "tiny").score(HEADLINES)
    float32 = SentimentModel(tiny, "tiny", Runtime.ONNX).score(HEADLINES)
    assert [s.label for s in float32] == [s.label for s in reference]
    assert max(abs(a.polarity - b.polarity) for a, b in zip(float32, reference)) < 1e-5
    # int8 weights move an untrained model's near-even probabilities a little: polarity stays close
    int8 = SentimentModel(tiny, "tiny", Runtime.ONNX_INT8).score(HEADLINES)
    assert max(abs(a.polarity - b.polarity) for a, b in zip(int8, reference)) < 0.01
    assert onnx_path(tiny, quantized=False).exists() and onnx_path(tiny, quantized=True).exists()


def test_the_export_is_reused_and_redone_for_new_weights(tiny, tiny_classifiers):
    first = onnx_path(tiny, quantized=False)
    SentimentModel(tiny, "tiny", Runtime.ONNX)
    made = first.stat().st_mtime_ns
    SentimentModel(tiny, "tiny", Runtime.ONNX)
    assert first.stat().st_mtime_ns == made  # made once
    shutil.copy(tiny_classifiers[1] / "model.safetensors", tiny / "model.safetensors")
    other = SentimentModel(tiny, "tiny", Runtime.ONNX).score(HEADLINES[:20])
    assert onnx_path(tiny, quantized=False) != first
    assert [s.polarity for s in other] == pytest.approx(
        [s.polarity for s in SentimentModel(tiny, "tiny").score(HEADLINES[:20])], abs=1e-5)


def test_onnx_needs_a_model_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        SentimentModel(tmp_path / "nothing-here", "none", Runtime.ONNX)
