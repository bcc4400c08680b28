"""The labelled sources beside the twitter set: scores mapped to labels at the fixed band,
repeats merged, no held-out sentence trained on (FiQA and SemEval share headlines), classes
balanced; and a leave-one-source-out fold end to end on a tiny classifier."""

from __future__ import annotations

from collections import Counter

import pytest

from tapeflow.config import PROJECT_DATA
from tapeflow.news.sentiment import TrainParams
from tapeflow.news.sentiment_loso import Setting, leave_one_source_out
from tapeflow.news.sentiment_sources import (
    Source,
    Split,
    balanced,
    counts,
    held_out_splits,
    label_of,
    load_sources,
    text_key,
    training_sets,
)


@pytest.fixture(scope="module")
def examples():
    return load_sources(PROJECT_DATA)


def test_scores_map_to_labels_at_the_band():
    assert [label_of(s) for s in (-1.0, -0.2, -0.199, 0.0, 0.199, 0.2, 0.9)] == [
        "negative", "negative", "neutral", "neutral", "neutral", "positive", "positive"]


def test_every_source_is_read_with_both_splits_and_each_sentence_once(examples):
    rows = Counter((e.source, e.split) for e in examples)
    assert rows == {(Source.TWITTER, Split.TRAIN): 9540, (Source.TWITTER, Split.TEST): 2388,
                    (Source.SEMEVAL_HEADLINES, Split.TRAIN): 781, (Source.SEMEVAL_HEADLINES, Split.TEST): 179,
                    (Source.FIQA_HEADLINES, Split.TRAIN): 336, (Source.FIQA_HEADLINES, Split.TEST): 100,
                    (Source.FIQA_POSTS, Split.TRAIN): 570, (Source.FIQA_POSTS, Split.TEST): 100}
    for source in (Source.SEMEVAL_HEADLINES, Source.FIQA_HEADLINES, Source.FIQA_POSTS):
        keys = [text_key(e.text) for e in examples if e.source is source]
        assert len(keys) == len(set(keys))  # a headline scored once per company is one example
    assert not any("http" in e.text for e in examples if e.source is Source.FIQA_POSTS)  # cleaned like the tweets


def test_a_headline_about_two_companies_takes_the_mean_score(examples):
    # SemEval scores Standard Chartered +0.509 and AstraZeneca -0.666 here: the mean, -0.079, is neutral
    text = "News FeedFTSE 100 movers: Standard Chartered lifted while AstraZeneca sinks"
    assert [e.label for e in examples if e.text == text and e.source is Source.SEMEVAL_HEADLINES] == ["neutral"]
    # BAE Systems +0.217 (positive alone), TalkTalk -0.113: the mean, +0.052, is neutral
    talktalk = "TalkTalk hires BAE Systems to investigate cyber attack"
    assert [e.label for e in examples if e.text == talktalk and e.source is Source.SEMEVAL_HEADLINES] == ["neutral"]


def test_the_training_mix_holds_no_test_sentence_and_is_balanced(examples):
    train, held_out, data = training_sets(PROJECT_DATA, None, None, 0)
    assert {text_key(e.text) for e in train}.isdisjoint(text_key(e.text) for e in held_out)
    assert held_out == held_out_splits(examples)
    assert {e.source for e in train} == set(Source)
    assert counts(train) == {"negative": 1911, "neutral": 2676, "positive": 2676}  # neutral cut to positive's count
    assert data["train"]["rows"] == len(train) and data["held_out"]["sources"]["fiqa-posts"] == 100


def test_balancing_cuts_each_label_to_the_middle_count(examples):
    cut = balanced([e for e in examples if e.source is Source.TWITTER and e.split is Split.TRAIN], seed=1)
    assert counts(cut) == {"negative": 1442, "neutral": 1923, "positive": 1923}
    assert cut != balanced([e for e in examples if e.source is Source.TWITTER and e.split is Split.TRAIN], seed=2)


@pytest.mark.slow
def test_a_fold_trains_on_the_others_and_scores_the_left_out_source(tiny_classifiers, tmp_path):
    params = TrainParams(epochs=1, batch_size=8, max_length=16)
    [fold] = leave_one_source_out(PROJECT_DATA, tmp_path, params, sources=[Source.FIQA_POSTS], per_source_limit=12,
                                  base=tiny_classifiers[0])
    assert fold.source is Source.FIQA_POSTS and fold.setting is Setting.LEFT_OUT
    assert fold.report.n == 12 and 3 <= fold.train_rows <= 36  # 12 from each other source, balanced
    assert set(fold.row()) >= {"macro_f1", "accuracy", "positive_recall", "positive_f1"}
    assert not (tmp_path / "loso-fiqa-posts").exists()  # fold weights go once scored


def test_nlp_loso_refuses_a_bad_option_in_one_line_before_training():
    from typer.testing import CliRunner

    from tapeflow.cli.main import app

    result = CliRunner().invoke(app, ["nlp", "loso", "--limit", "3"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip() == "--limit must be at least 10 (a few of each label), got 3: e.g. --limit 200"
