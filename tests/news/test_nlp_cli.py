"""`tapeflow nlp use` and `nlp models`: switching the current model rescores every stored
headline with it; a version nobody recorded is refused in one line; the listing marks the
current model and fits 80 columns without cutting an id."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tapeflow.cli.main import app
from tapeflow.cli.model_listing import ModelLine, listing
from tapeflow.news.model_registry import ChoiceReason, choose_model, record_model
from tapeflow.news.sentiment_data import LABELS

runner = CliRunner()
WINDOW = (datetime(2010, 8, 16, tzinfo=UTC), datetime(2010, 8, 21, tzinfo=UTC))


def record(warehouse, version: str, path: Path, macro_f1: float) -> None:
    from tapeflow.news.metrics import classification_report

    report = replace(classification_report(list(LABELS), list(LABELS), LABELS), macro_f1=macro_f1, n=2388)
    record_model(warehouse, version=version, base_model="test", path=path, training_data={"train": {"rows": 48}},
                 params={}, held_out="-", report=report, train_seconds=1.0)


def store_sample_headlines(settings, warehouse) -> int:
    """The bundled sample headlines, stored as the ingest flow stores them."""
    from tapeflow.ingest.news import check_news
    from tapeflow.ingest.store import NEWS, store_batch
    from tapeflow.news.replay import ReplayNews
    from tapeflow.sources import Window

    checked = check_news(ReplayNews(settings.data_dir / "news").news(None, Window(*WINDOW)))
    store_batch(warehouse, NEWS, checked.good, checked.rejected, run_id="r1", source="replay", feed="news",
                params={}, started_at=WINDOW[1])
    return checked.good.height


def test_an_unknown_version_is_refused_in_one_line_naming_the_known_ones(warehouse, tmp_path):
    for version in ("minilm-fin-aaaaaaaaaa", "minilm-fin-bbbbbbbbbb"):
        (tmp_path / version).mkdir()
        record(warehouse, version, tmp_path / version, 0.7)
    for wrong in ("minilm-fin-cccccccccc", "lexicon-v1"):
        result = runner.invoke(app, ["nlp", "use", wrong])
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
        assert "known: minilm-fin-bbbbbbbbbb, minilm-fin-aaaaaaaaaa" in result.stderr


def test_without_any_model_use_says_how_to_get_one(tapeflow_home):
    result = runner.invoke(app, ["nlp", "use", "minilm-fin-aaaaaaaaaa"])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("unknown sentiment model 'minilm-fin-aaaaaaaaaa': none is recorded; train one "
                                     "with `tapeflow nlp train`")


@pytest.mark.slow  # the score-news flow, end to end
@pytest.mark.usefixtures("prefect_harness")
def test_use_makes_a_model_current_and_every_stored_headline_gets_its_score(settings, warehouse, tiny_classifiers):
    from tapeflow.cli.news import recent_catalysts
    from tapeflow.news.enrich import NewsReader

    first, second = "tiny-first", "tiny-second"
    record(warehouse, first, tiny_classifiers[0], 0.61)
    record(warehouse, second, tiny_classifiers[1], 0.64)
    choose_model(warehouse, first, ChoiceReason.USE)
    stored = store_sample_headlines(settings, warehouse)
    assert NewsReader(settings, warehouse).read_new()["scored"] == stored  # read by the first model

    result = runner.invoke(app, ["nlp", "use", second])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{second} is current (was {first}); scored {stored} stored headlines with it"
    with warehouse.read() as con:
        unscored = con.execute("SELECT count(*) FROM news n ANTI JOIN news_scores s ON s.source = n.source AND "
                               "s.id = n.id AND s.news_hash = n.payload_hash AND s.model = ?", [second]).fetchone()[0]
    assert unscored == 0
    catalysts = recent_catalysts(warehouse, since=WINDOW[0], limit=50)
    assert catalysts.height == stored and catalysts["sentiment"].null_count() == 0

    again = runner.invoke(app, ["nlp", "use", second])
    assert again.exit_code == 0 and again.stdout.strip() == f"{second} is current already"
    listed = runner.invoke(app, ["nlp", "models"])
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert [line[:2] for line in lines if line[2:].startswith("tiny-")] == ["* ", "  "]  # newest first: the second is current
    assert any(line.startswith("  lexicon-v1 (baseline)") and "0.618" in line for line in lines)  # all test splits
    assert lines[-1] == f"current: {second}" and max(map(len, lines)) <= 80


def test_the_listing_fits_80_columns_and_puts_a_long_id_on_its_own_line():
    at = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    long_id = "my-finbert-checkpoint-from-the-lab-0123456789"
    lines = listing([ModelLine("minilm-fin-d611c29c08", at, 9540, 2388, 0.864, 0.828),
                     ModelLine(long_id, at, None, None, None, None)], current=long_id)
    assert lines == [
        "  version                 trained (NY)       train  held-out  accuracy  macro-F1",
        "  minilm-fin-d611c29c08   2026-06-01 06:00   9,540     2,388     0.864     0.828",
        f"* {long_id}",  # whole, on its own line, the figures under it
        "                          2026-06-01 06:00       -         -         -         -",
    ]
    assert max(map(len, lines)) <= 80
