"""Scores checked against numbers worked out by hand."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from tapeflow.news.catalysts import Catalyst
from tapeflow.news.metrics import (
    Report,
    classification_report,
    confusion_table,
    set_scores,
)


def test_classification_report_by_hand():
    true = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "b", "a", "b", "c", "c"]
    r = classification_report(true, pred, ["a", "b", "c"])
    # confusion (rows true, columns predicted):   a: 2 1 0 / b: 0 1 1 / c: 0 0 1
    assert r.confusion == ((2, 1, 0), (0, 1, 1), (0, 0, 1))
    assert r.n == 6
    assert r.accuracy == pytest.approx(4 / 6)
    a, b, c = r.per_class["a"], r.per_class["b"], r.per_class["c"]
    assert (a.precision, a.recall, a.support) == (1.0, pytest.approx(2 / 3), 3)
    assert a.f1 == pytest.approx(0.8)  # 2 * 1 * 2/3 / (1 + 2/3)
    assert (b.precision, b.recall, b.f1, b.support) == (0.5, 0.5, 0.5, 2)
    assert (c.precision, c.recall, c.support) == (0.5, 1.0, 1)
    assert c.f1 == pytest.approx(2 / 3)
    assert r.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_a_class_never_seen_nor_predicted_counts_as_zero_in_macro_f1():
    r = classification_report(["x", "x"], ["x", "x"], ["x", "y"])
    assert r.per_class["y"].precision == r.per_class["y"].recall == r.per_class["y"].f1 == 0.0
    assert r.per_class["y"].support == 0
    assert r.accuracy == 1.0 and r.macro_f1 == 0.5


def test_enum_members_and_their_values_are_the_same_label():
    labels = list(Catalyst)
    r = classification_report([Catalyst.MA, "m&a", Catalyst.OTHER], ["m&a", Catalyst.MA, "fda"], labels)
    assert r.labels == tuple(c.value for c in Catalyst)
    assert r.per_class["m&a"].recall == 1.0 and r.per_class["other"].recall == 0.0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="2 true labels but 1 predictions"):
        classification_report(["a", "b"], ["a"], ["a", "b"])
    with pytest.raises(ValueError, match="'z' is not one of"):
        classification_report(["a"], ["z"], ["a", "b"])
    with pytest.raises(ValueError, match="repeat"):
        classification_report(["a"], ["a"], ["a", "a"])


def test_empty_input_scores_zero():
    r = classification_report([], [], ["a"])
    assert (r.n, r.accuracy, r.macro_f1) == (0, 0.0, 0.0)


def test_report_is_frozen_and_json_ready():
    r = classification_report(["a", "b"], ["a", "a"], ["a", "b"])
    assert isinstance(r, Report)
    with pytest.raises(AttributeError):
        r.accuracy = 1.0  # type: ignore[misc]
    assert json.loads(json.dumps(r.as_dict()))["per_class"]["a"]["precision"] == 0.5
    assert json.dumps(asdict(r))  # what model_registry stores


def test_confusion_table_is_markdown():
    r = classification_report(["a", "a", "b"], ["a", "b", "b"], ["a", "b"])
    assert confusion_table(r).splitlines() == [
        "| true \\ predicted | a | b |",
        "|---|---:|---:|",
        "| a | 1 | 1 |",
        "| b | 0 | 1 |",
    ]


def test_set_scores_micro_average_by_hand():
    true = [{"AAPL", "MSFT"}, {"TSLA"}, set(), {"GS"}]
    pred = [{"AAPL"}, {"TSLA", "F"}, {"JPM"}, set()]
    # hits 2 (AAPL, TSLA); predicted 4; true 4
    precision, recall, f1 = set_scores(true, pred)
    assert (precision, recall, f1) == (0.5, 0.5, 0.5)
    assert set_scores([{"A"}], [{"A", "B", "C"}]) == (pytest.approx(1 / 3), 1.0, pytest.approx(0.5))
    assert set_scores([set()], [set()]) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        set_scores([set()], [])
