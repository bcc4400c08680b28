"""TAPEFLOW_SENTIMENT_RUNTIME: stored headlines are scored through ONNX Runtime when it says so,
with torch's labels under the model's own version; a value it does not know is refused in one line."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tapeflow.cli.setting_errors import is_settings_error, settings_refusal
from tapeflow.config import Settings
from tapeflow.model import Runtime
from tapeflow.news.enrich import NewsReader
from tapeflow.news.sentiment import SentimentModel
from tapeflow.news.sentiment_onnx import onnx_path
from tests.news.conftest import save_tiny_classifier
from tests.news.test_nlp_cli import store_sample_headlines
from warehouse import Warehouse


def test_the_setting_scores_stored_headlines_through_onnx_runtime(tapeflow_home, monkeypatch):
    folder = save_tiny_classifier(tapeflow_home.parent / "tiny", seed=1, initializer_range=0.5)
    monkeypatch.setenv("TAPEFLOW_SENTIMENT_MODEL", str(folder))
    monkeypatch.setenv("TAPEFLOW_SENTIMENT_RUNTIME", "onnx")
    settings = Settings()
    assert settings.sentiment_runtime is Runtime.ONNX
    warehouse = Warehouse(settings.warehouse_path, lock_timeout_s=5)
    stored = store_sample_headlines(settings, warehouse)

    assert not onnx_path(folder, quantized=False).exists()
    reader = NewsReader(settings, warehouse)
    assert onnx_path(folder, quantized=False).exists()  # the float32 export ONNX Runtime runs, made on loading
    assert not onnx_path(folder, quantized=True).exists()
    assert reader.read_new()["scored"] == stored

    with warehouse.read() as con:
        rows = con.execute("SELECT s.model, n.headline, s.label, s.polarity FROM news_scores s "
                           "JOIN news n USING (source, id) ORDER BY n.source, n.id").fetchall()
    version = reader.models[0].version
    assert {model for model, *_ in rows} == {version}  # the model's version, whatever ran it
    reference = SentimentModel(folder, version).score([headline for _, headline, *_ in rows])
    assert len({label for *_, label, _ in rows}) > 1  # the headlines disagree: equal labels are no accident
    assert [label for *_, label, _ in rows] == [s.label for s in reference]
    assert [polarity for *_, polarity in rows] == pytest.approx([s.polarity for s in reference], abs=1e-5)


def test_an_unknown_runtime_is_refused_in_one_line_naming_the_setting(tapeflow_home, monkeypatch):
    monkeypatch.setenv("TAPEFLOW_SENTIMENT_RUNTIME", "tensorrt")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert is_settings_error(info.value)
    assert settings_refusal(info.value) == ("TAPEFLOW_SENTIMENT_RUNTIME=tensorrt: input should be 'torch', 'onnx' or "
                                            "'onnx-int8' (docs/configuration.md lists the settings)")


def test_onnx_runtime_asks_for_a_model_folder_naming_both_settings(tapeflow_home, monkeypatch):
    monkeypatch.setenv("TAPEFLOW_SENTIMENT_MODEL", "ProsusAI/finbert")  # a hub id: no folder for the export
    monkeypatch.setenv("TAPEFLOW_SENTIMENT_RUNTIME", "onnx-int8")
    settings = Settings()
    with pytest.raises(ValueError, match="TAPEFLOW_SENTIMENT_RUNTIME=onnx-int8 runs a model in a local folder.*"
                                         "TAPEFLOW_SENTIMENT_MODEL to its folder"):
        NewsReader(settings, Warehouse(settings.warehouse_path, lock_timeout_s=5))
