"""Scores for the news taggers: a classification report with its confusion matrix, and
micro-averaged precision / recall / F1 over sets of tickers.

Conventions: precision of a class never predicted, recall of a class absent from the truth and
F1 where precision + recall is 0 are 0.0 (as scikit-learn's `zero_division=0`); macro F1 is the
unweighted mean over the labels given, so a class with no support still counts, as 0.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ClassScores:
    """One class: precision, recall, F1 and support (its count in the truth)."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Report:
    """A classifier measured on labelled examples.

    `confusion[i][j]` counts examples whose true label is `labels[i]` and predicted `labels[j]`.
    """

    labels: tuple[str, ...]
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion: tuple[tuple[int, ...], ...]
    n: int

    def as_dict(self) -> dict[str, object]:
        """JSON-ready (sentiment_models.report and the like)."""
        return {
            "labels": list(self.labels),
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_class": {
                k: {"precision": v.precision, "recall": v.recall, "f1": v.f1, "support": v.support}
                for k, v in self.per_class.items()
            },
            "confusion": [list(row) for row in self.confusion],
        }


def classification_report(true: Sequence[Hashable], pred: Sequence[Hashable], labels: Sequence[Hashable]) -> Report:
    """Accuracy, macro F1, per-class scores and the confusion matrix over `labels` (in that order).

    Labels are compared as strings, so a StrEnum and its value are the same class. A true or
    predicted label outside `labels` is a ValueError: a silent extra class would skew every score.
    """
    if len(true) != len(pred):
        raise ValueError(f"{len(true)} true labels but {len(pred)} predictions")
    names = tuple(str(label) for label in labels)
    if len(set(names)) != len(names):
        raise ValueError(f"labels repeat: {names}")
    at = {name: k for k, name in enumerate(names)}
    matrix = [[0] * len(names) for _ in names]
    for t, p in zip(true, pred, strict=True):
        t, p = str(t), str(p)
        for label in (t, p):
            if label not in at:
                raise ValueError(f"label {label!r} is not one of {names}")
        matrix[at[t]][at[p]] += 1

    per_class: dict[str, ClassScores] = {}
    for k, name in enumerate(names):
        hit = matrix[k][k]
        support = sum(matrix[k])
        predicted = sum(row[k] for row in matrix)
        precision, recall, f1 = _prf(hit, predicted, support)
        per_class[name] = ClassScores(precision, recall, f1, support)
    n = len(true)
    correct = sum(matrix[k][k] for k in range(len(names)))
    return Report(
        labels=names,
        accuracy=correct / n if n else 0.0,
        macro_f1=sum(s.f1 for s in per_class.values()) / len(names) if names else 0.0,
        per_class=per_class,
        confusion=tuple(tuple(row) for row in matrix),
        n=n,
    )


def confusion_table(report: Report) -> str:
    """The confusion matrix as a markdown table: rows are the truth, columns the prediction."""
    header = "| true \\ predicted | " + " | ".join(report.labels) + " |"
    rule = "|---|" + "---:|" * len(report.labels)
    rows = [
        f"| {label} | " + " | ".join(str(c) for c in counts) + " |"
        for label, counts in zip(report.labels, report.confusion, strict=True)
    ]
    return "\n".join([header, rule, *rows])


def set_scores(true_sets: Iterable[Iterable[str]], pred_sets: Iterable[Iterable[str]]) -> tuple[float, float, float]:
    """Micro-averaged (precision, recall, F1) over all (item, ticker) pairs."""
    hit = predicted = actual = 0
    true_list, pred_list = list(true_sets), list(pred_sets)
    if len(true_list) != len(pred_list):
        raise ValueError(f"{len(true_list)} true sets but {len(pred_list)} predicted sets")
    for t, p in zip(true_list, pred_list, strict=True):
        t, p = set(t), set(p)
        hit += len(t & p)
        predicted += len(p)
        actual += len(t)
    return _prf(hit, predicted, actual)


def _prf(hit: int, predicted: int, actual: int) -> tuple[float, float, float]:
    precision = hit / predicted if predicted else 0.0
    recall = hit / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
