"""Sentiment: the labelled data, the lexicon baseline, reading a model's labels, and the
train-sentiment flow end to end on a small subset (real fine-tuning, real warehouse)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import pytest

from tapeflow.config import PROJECT_DATA
from tapeflow.news.lexicon import lexicon_label
from tapeflow.news.sentiment import TrainParams, _label_order, model_version
from tapeflow.news.sentiment_data import clean, load_split, stratified_subset

UTC = UTC


def test_the_bundled_splits_are_read_with_their_labels():
    train = load_split("train", PROJECT_DATA)
    held_out = load_split("valid", PROJECT_DATA)
    assert (len(train), len(held_out)) == (9540, 2388)  # 9,543 rows less three that are only a link
    assert Counter(e.label for e in train) == {"neutral": 6175, "positive": 1923, "negative": 1442}
    assert all("https://" not in e.text for e in train)


def test_clean_drops_links_and_spaces():
    assert clean("$ALLY - Ally Financial pulls outlook https://t.co/G9Zdi1boy5 ") == "$ALLY - Ally Financial pulls outlook"


def test_a_bad_label_or_a_missing_file_is_a_clear_error(tmp_path):
    (tmp_path / "sentiment").mkdir()
    (tmp_path / "sentiment" / "sent_train.csv").write_text("text,label\nfine,2\nodd,7\n")
    with pytest.raises(ValueError, match="unknown labels \\[7\\]"):
        load_split("train", tmp_path)
    with pytest.raises(FileNotFoundError, match="sent_valid.csv"):
        load_split("valid", tmp_path)
    with pytest.raises(ValueError, match="unknown split"):
        load_split("test", tmp_path)


def test_a_stratified_subset_keeps_label_shares_and_is_repeatable():
    train = load_split("train", PROJECT_DATA)
    subset = stratified_subset(train, 1000, seed=3)
    counts = Counter(e.label for e in subset)
    assert len(subset) == 1000
    assert abs(counts["neutral"] - 647) <= 2 and abs(counts["negative"] - 151) <= 2
    assert subset == stratified_subset(train, 1000, seed=3)
    assert subset != stratified_subset(train, 1000, seed=4)


@pytest.mark.parametrize("text, label", [
    ("Acme beats estimates and raises guidance", "positive"),
    ("Acme misses estimates, shares fall", "negative"),
    ("Acme results were not strong", "negative"),
    ("Acme to present at a conference on Tuesday", "neutral"),
])
def test_the_lexicon_baseline(text, label):
    assert lexicon_label(text) == label


def test_a_models_labels_are_read_by_name_whatever_their_order():
    # FinBERT's order: positive, negative, neutral.
    assert _label_order({0: "positive", 1: "negative", 2: "neutral"}) == [1, 2, 0]
    assert _label_order({0: "Bearish", 1: "Bullish", 2: "Neutral"}) == [0, 2, 1]
    with pytest.raises(ValueError, match="do not name exactly one negative"):
        _label_order({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})


def test_the_model_version_follows_data_and_parameters():
    data = {"train": {"sha256": "a", "rows": 10}}
    one = model_version("base", data, TrainParams())
    assert one == model_version("base", data, TrainParams())
    assert one != model_version("base", {"train": {"sha256": "b", "rows": 10}}, TrainParams())
    assert one != model_version("base", data, TrainParams(epochs=2))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, prefect_harness):
    """Two small models trained by the flow into one warehouse (different seeds: two versions),
    the second made current whatever its figures."""
    home = tmp_path_factory.mktemp("nlp") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TAPEFLOW_HOME", str(home))
        mp.setenv("TAPEFLOW_DATA_DIR", str(PROJECT_DATA))
        from flows.nlp import train_sentiment

        first = train_sentiment(subset=48, epochs=1, max_length=32, held_out_limit=30, seed=0)
        second = train_sentiment(subset=48, epochs=1, max_length=32, held_out_limit=30, seed=1, make_current=True)
    return home, first, second


@pytest.mark.slow
def test_train_sentiment_records_the_model_its_data_and_held_out_figures(trained):
    from tapeflow.config import Settings
    from warehouse import open_warehouse

    home, first, second = trained
    assert first["version"] != second["version"]
    assert first["train_rows"] == 48 and first["held_out_rows"] == 30
    with open_warehouse(Settings(home=home)).read() as con:
        rows = con.execute("SELECT version, path, training_data, params, held_out, accuracy, macro_f1, report "
                           "FROM sentiment_models ORDER BY trained_at").fetchall()
    assert [r[0] for r in rows] == [first["version"], second["version"]]
    version, path, data, params, held_out, accuracy, macro_f1, report = rows[0]
    data, params, report = json.loads(data), json.loads(params), json.loads(report)
    assert (home / "models" / version / "config.json").exists() and path.endswith(version)
    assert data["train"]["rows"] == 48 and sum(data["train"]["labels"].values()) == 48
    assert data["train"]["sha256"] and sum(data["held_out"]["sources"].values()) == 30
    assert params["epochs"] == 1 and params["seed"] == 0
    assert held_out == ("test splits of twitter, semeval-headlines, fiqa-headlines, fiqa-posts: 30 sentences "
                        "(a stratified subset)")
    assert accuracy == pytest.approx(first["accuracy"]) and 0 <= macro_f1 <= 1
    assert sum(map(sum, report["confusion"])) == 30


@pytest.mark.slow
def test_a_trained_model_takes_over_only_if_it_beats_the_current_one(trained):
    _, first, second = trained
    assert first["compared_with"] == "lexicon-v1"  # nothing was current: the baseline is the bar
    assert first["current"] == (first["macro_f1"] > first["compared_macro_f1"])
    assert first["verdict"].startswith(f"made {first['version']} current" if first["current"] else "kept no model")
    assert second["current"] and second["compared_with"] == (first["version"] if first["current"] else "lexicon-v1")
    assert second["verdict"].startswith(f"made {second['version']} current")


@pytest.mark.slow
def test_scores_are_kept_per_model_version(trained, monkeypatch):
    from flows.news import ingest_news, score_news
    from tapeflow.config import Settings
    from warehouse import open_warehouse

    home, first, second = trained
    monkeypatch.setenv("TAPEFLOW_HOME", str(home))
    monkeypatch.setenv("TAPEFLOW_DATA_DIR", str(PROJECT_DATA))
    window = dict(start=datetime(2010, 8, 16, tzinfo=UTC), end=datetime(2010, 8, 21, tzinfo=UTC))
    counts = ingest_news(source="replay", **window)  # scored with the current model: the second
    assert (counts["inserted"], counts["quarantined"], counts["scored"], counts["model"]) == (13, 1, 13, second["version"])
    assert ingest_news(source="replay", **window)["inserted"] == 0  # idempotent: nothing new, nothing rescored

    monkeypatch.setenv("TAPEFLOW_SENTIMENT_MODEL", first["path"])  # a recorded model's folder: its version
    assert score_news()["scored"] == 13  # the first model reads them too, beside the second's scores
    with open_warehouse(Settings(home=home)).read() as con:
        per_model = dict(con.execute("SELECT model, count(*) FROM news_scores GROUP BY model").fetchall())
        tags = con.execute("SELECT count(*) FROM news_tags").fetchone()[0]
    assert per_model == {second["version"]: 13, first["version"]: 13}
    assert tags == 13


@pytest.mark.slow
def test_a_configured_model_folder_is_recorded_under_its_weights_digest(trained, tmp_path, monkeypatch):
    import shutil

    from tapeflow.config import Settings
    from tapeflow.news.model_registry import current_model
    from warehouse import open_warehouse

    home, first, _ = trained
    mine = tmp_path / "my-finbert"
    shutil.copytree(first["path"], mine)
    warehouse = open_warehouse(Settings(home=tmp_path / "home"))
    version, path = current_model(Settings(home=tmp_path / "home", sentiment_model=str(mine)), warehouse)
    assert version.startswith("my-finbert-") and path == str(mine)
    assert current_model(Settings(home=tmp_path / "home", sentiment_model=version), warehouse) == (version, path)
    (mine / "model.safetensors").write_bytes(b"other weights")  # new weights in the same folder: a new version
    newer, _ = current_model(Settings(home=tmp_path / "home", sentiment_model=str(mine)), warehouse)
    assert newer.startswith("my-finbert-") and newer != version
    with warehouse.read() as con:
        assert con.execute("SELECT base_model, held_out FROM sentiment_models").fetchall() == [
            ("configured", "not evaluated (tapeflow nlp eval --model VERSION)")] * 2


@pytest.mark.slow
def test_nlp_eval_prints_every_reader_against_its_labelled_data(trained, monkeypatch):
    from typer.testing import CliRunner

    from tapeflow.cli.main import app

    home, first, _ = trained
    monkeypatch.setenv("TAPEFLOW_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["nlp", "eval", "--model", first["version"], "--limit", "30"])
    assert result.exit_code == 0, result.output
    cells = [[cell.strip() for cell in line.split("│")[1:4]] for line in result.stdout.splitlines() if line.count("│") > 5]
    lines = {" ".join(row[:2]) for row in cells}
    assert lines == {f"sentiment {first['version']}", "sentiment baseline lexicon-v1", "catalyst rules-v1",
                     "tickers rules-v1"}
    sentiment = [line for line in result.stdout.splitlines() if first["version"] in line]
    assert "all sources, test splits" in sentiment[0] and "twitter test" in "".join(sentiment[1:])
    assert f"{first['accuracy']:.3f}".rstrip("0") in sentiment[0]  # the same 30 sentences
    assert "| true \\ predicted | negative | neutral | positive |" in result.stdout
    assert "| true \\ predicted | earnings | fda | contract | m&a | partnership | dilution | other |" in result.stdout


def test_without_a_model_scoring_says_how_to_get_one(tapeflow_home):
    from typer.testing import CliRunner

    from tapeflow.cli.main import app

    result = CliRunner().invoke(app, ["nlp", "eval"])
    assert result.exit_code == 1
    assert "no sentiment model: train one with `tapeflow nlp train`" in result.stderr
