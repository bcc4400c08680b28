"""How well the sentiment recipe carries to text it never saw: leave one source out (train on
the others, score all of it), and the model trained on every source's train split measured on
each source's own test split."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from tapeflow.news.metrics import Report, classification_report
from tapeflow.news.sentiment import SentimentModel, TrainParams, fine_tune
from tapeflow.news.sentiment_data import LABELS, stratified_subset
from tapeflow.news.sentiment_sources import (
    Source,
    SourcedExample,
    counts,
    load_sources,
    training_pool,
    training_sets,
)
from tapeflow.progress import tracked

LOSO_PARAMS = {"epochs": 2, "max_length": 64}
"""The recipe the folds use: two passes, 64 tokens (headlines rarely need more)."""


class Setting(StrEnum):
    """How a source was measured: held out of training entirely, or by its test split under
    the model trained on every source's train split."""

    LEFT_OUT = "left out"
    MIX = "mix, test split"


@dataclass(frozen=True)
class SourceResult:
    source: Source
    setting: Setting
    train_rows: int
    report: Report
    train_seconds: float

    def row(self) -> dict[str, object]:
        positive = self.report.per_class["positive"]
        return {"held_out": self.source.value, "setting": self.setting.value, "train_rows": self.train_rows,
                "n": self.report.n, "macro_f1": self.report.macro_f1, "accuracy": self.report.accuracy,
                "positive_recall": positive.recall, "positive_f1": positive.f1,
                "train_seconds": round(self.train_seconds, 1)}


def per_source(model: SentimentModel, examples: Sequence[SourcedExample]) -> dict[Source, Report]:
    """One scoring pass over `examples`, reported per source."""
    labels = [s.label for s in model.score([e.text for e in examples], work="scoring held-out sentences")]
    reports = {}
    for source in dict.fromkeys(e.source for e in examples):
        picked = [i for i, e in enumerate(examples) if e.source is source]
        reports[source] = classification_report([examples[i].label for i in picked], [labels[i] for i in picked], LABELS)
    return reports


def leave_one_source_out(data_dir: Path, out_root: Path, params: TrainParams, *, sources: Sequence[Source] = tuple(Source),
                         per_source_limit: int | None = None, base: Path | None = None,
                         log: Callable[[str], None] = lambda _: None) -> list[SourceResult]:
    """For each source: train on the train splits of the others (less its sentences), score
    every sentence of it. Fold weights are removed once scored."""
    examples = load_sources(data_dir)
    results = []
    with tracked("leaving one source out", total=len(sources)) as tracker:
        for k, source in enumerate(sources):
            tracker.update(k, detail=source.value)
            held_out = stratified_subset([e for e in examples if e.source is source], per_source_limit, params.seed)
            train = training_pool(examples, [s for s in Source if s is not source], held_out,
                                  params.seed, per_source_limit)
            log(f"{source.value} left out: training on {len(train)} sentences {counts(train)}, "
                f"scoring {len(held_out)} {counts(held_out)}")
            folder = out_root / f"loso-{source.value}"
            trained = fine_tune(train, held_out, folder, f"loso-{source.value}", params, base=base, log=log)
            shutil.rmtree(folder, ignore_errors=True)
            results.append(SourceResult(source, Setting.LEFT_OUT, len(train), trained.held_out, trained.train_seconds))
            log(f"{source.value}: macro-F1 {trained.held_out.macro_f1:.3f}, "
                f"positive recall {trained.held_out.per_class['positive'].recall:.3f}")
        tracker.update(len(sources), detail="")
    return results


def train_on_mix(data_dir: Path, out_dir: Path, version: str, params: TrainParams, *, subset: int | None = None,
                 held_out_limit: int | None = None, base: Path | None = None,
                 log: Callable[[str], None] = lambda _: None) -> list[SourceResult]:
    """The model `tapeflow nlp train` makes (every source's train split, balanced), kept in
    `out_dir` and measured on each source's test split."""
    train, tests, _ = training_sets(data_dir, subset, held_out_limit, params.seed)
    log(f"mix: training on {len(train)} sentences {counts(train)}")
    trained = fine_tune(train, tests, out_dir, version, params, base=base, log=log)
    reports = per_source(SentimentModel(out_dir, version), tests)
    return [SourceResult(s, Setting.MIX, len(train), r, trained.train_seconds) for s, r in reports.items()]


def save_results(results: Sequence[SourceResult], path: Path) -> None:
    """The table and each confusion matrix, as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{**r.row(), "report": r.report.as_dict()} for r in results], indent=1))
