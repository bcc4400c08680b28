"""Which sentiment model is current: a trained model takes over only when it beats the current
one (or the lexicon baseline) on the same held-out sentences, or when made current on purpose;
choices are kept as a history, and warehouses from before them keep their latest trained model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from tapeflow.config import PROJECT_DATA
from tapeflow.news.lexicon import lexicon_label
from tapeflow.news.metrics import classification_report
from tapeflow.news.model_choice import held_out_key, judge
from tapeflow.news.model_registry import (
    ChoiceReason,
    NoSentimentModel,
    choose_model,
    current_model,
    record_model,
)
from tapeflow.news.sentiment_data import LABELS, load_split, stratified_subset
from warehouse.migrate import apply_migrations, bundled_migrations

HELD_OUT = stratified_subset(load_split("valid", PROJECT_DATA), 90)
DATA = {"held_out": {"file": "sent_valid.csv", "rows": 90}, "held_out_limit": 90}
PARAMS = {"seed": 0}
KEY = held_out_key(DATA, PARAMS)
LEXICON_F1 = classification_report([e.label for e in HELD_OUT], [lexicon_label(e.text) for e in HELD_OUT], LABELS).macro_f1
PERFECT = classification_report([e.label for e in HELD_OUT], [e.label for e in HELD_OUT], LABELS)


def trained(warehouse, tmp_path: Path, version: str, macro_f1: float, data: dict = DATA, path: Path | None = None) -> float:
    """Record a trained model (its folder on disk) with `macro_f1` on the held-out sentences of `data`."""
    folder = path or tmp_path / version
    folder.mkdir(exist_ok=True)
    record_model(warehouse, version=version, base_model="test", path=folder, training_data=data, params=PARAMS,
                 held_out="-", report=replace(PERFECT, macro_f1=macro_f1), train_seconds=1.0)
    return macro_f1


def test_with_no_model_current_a_trained_one_must_beat_the_lexicon_baseline(settings, warehouse, tmp_path):
    weak = trained(warehouse, tmp_path, "weak", LEXICON_F1 - 0.3)
    verdict = judge(warehouse, version="weak", macro_f1=weak, key=KEY, held_out=HELD_OUT, make_current=False)
    assert not verdict.current and verdict.rival == "lexicon-v1" and verdict.rival_macro_f1 == pytest.approx(LEXICON_F1)
    assert verdict.sentence() == (
        f"kept no model as current: new model macro-F1 {weak:.3f} < {LEXICON_F1:.3f} of lexicon-v1 (baseline) on the "
        "same 90 held-out sentences, so headlines stay unscored; use `tapeflow nlp use weak` to switch")
    with pytest.raises(NoSentimentModel, match="no sentiment model is current: choose one with `tapeflow nlp use VERSION`"):
        current_model(settings, warehouse)

    good = trained(warehouse, tmp_path, "good", LEXICON_F1 + 0.1)
    verdict = judge(warehouse, version="good", macro_f1=good, key=KEY, held_out=HELD_OUT, make_current=False)
    assert verdict.reason is ChoiceReason.BEAT_CURRENT
    assert verdict.sentence().startswith(f"made good current: macro-F1 {good:.3f} > {LEXICON_F1:.3f} of lexicon-v1")
    assert current_model(settings, warehouse) == ("good", str(tmp_path / "good"))


def test_a_worse_model_is_kept_out_unless_made_current(settings, warehouse, tmp_path):
    judge(warehouse, version="good", macro_f1=trained(warehouse, tmp_path, "good", 0.9), key=KEY, held_out=HELD_OUT,
          make_current=False)
    worse = trained(warehouse, tmp_path, "worse", 0.5)
    kept = judge(warehouse, version="worse", macro_f1=worse, key=KEY, held_out=HELD_OUT, make_current=False)
    assert not kept.current and current_model(settings, warehouse)[0] == "good"
    assert kept.sentence() == ("kept good as current: new model macro-F1 0.500 < 0.900 of good on the same 90 held-out "
                               "sentences; use `tapeflow nlp use worse` to switch")

    forced = judge(warehouse, version="worse", macro_f1=worse, key=KEY, held_out=HELD_OUT, make_current=True)
    assert forced.reason is ChoiceReason.MAKE_CURRENT and current_model(settings, warehouse)[0] == "worse"
    assert forced.sentence().startswith("made worse current (--make-current): macro-F1 0.500 against 0.900 of good")
    with warehouse.read() as con:
        assert con.execute("SELECT version, reason FROM sentiment_choices ORDER BY chosen_at").fetchall() == [
            ("good", "beat-current"), ("worse", "make-current")]


def test_a_current_model_measured_on_other_sentences_is_measured_again(settings, warehouse, tmp_path, tiny_classifiers):
    from tapeflow.news.sentiment import SentimentModel

    # Recorded as 0.99 on 30 other sentences: that figure says nothing about these 90.
    trained(warehouse, tmp_path, "tiny", 0.99, data={**DATA, "held_out_limit": 30}, path=tiny_classifiers[0])
    choose_model(warehouse, "tiny", ChoiceReason.USE)
    measured = SentimentModel(tiny_classifiers[0], "tiny").evaluate(HELD_OUT).macro_f1
    new = trained(warehouse, tmp_path, "new", measured + 0.01)
    verdict = judge(warehouse, version="new", macro_f1=new, key=KEY, held_out=HELD_OUT, make_current=False)
    assert verdict.rival == "tiny" and verdict.rival_macro_f1 == pytest.approx(measured)
    assert verdict.current and current_model(settings, warehouse)[0] == "new"


def test_a_day_reads_the_model_chosen_before_it_began(settings, warehouse, tmp_path):
    from datetime import UTC, date, datetime

    from tapeflow.news.model_registry import day_model

    for version, at in (("old", datetime(2024, 3, 4, 20, 0, tzinfo=UTC)), ("new", datetime(2024, 3, 5, 15, 0, tzinfo=UTC))):
        trained(warehouse, tmp_path, version, 0.8)
        choose_model(warehouse, version, ChoiceReason.USE, at=at)
    assert day_model(settings, warehouse, date(2024, 3, 5))[0] == "old"  # chosen during the day: the next day's
    assert day_model(settings, warehouse, date(2024, 3, 6))[0] == "new"
    (tmp_path / "new").rmdir()  # its weights deleted: the model chosen before it is current again
    assert current_model(settings, warehouse)[0] == "old"


def test_a_warehouse_from_before_choices_keeps_its_latest_trained_model_current(settings, tmp_path):
    from warehouse import open_warehouse

    settings.warehouse_path.parent.mkdir(parents=True)
    con = duckdb.connect(str(settings.warehouse_path))
    apply_migrations(con, [m for m in bundled_migrations() if m.version < 10])
    for version, base, day in (("first", "base", 1), ("second", "base", 2), ("finbert", "configured", 3)):
        (tmp_path / version).mkdir()
        con.execute("INSERT INTO sentiment_models VALUES (?, ?, ?, '{}', '{}', '-', NULL, NULL, NULL, ?, NULL)",
                    [version, base, str(tmp_path / version), f"2024-03-0{day} 12:00:00+00"])
    con.close()
    # Read first (no write has migrated it yet): the latest trained model is current, as it was.
    assert current_model(settings, open_warehouse(settings))[0] == "second"
    with open_warehouse(settings).read() as con:
        assert con.execute("SELECT version, reason FROM sentiment_choices ORDER BY chosen_at").fetchall() == [
            ("first", "latest-trained"), ("second", "latest-trained")]
