"""`tapeflow nlp eval`: every layer-2 reader measured on data it was not built from."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from tapeflow.config import Settings
from tapeflow.model import Runtime
from tapeflow.news.catalysts import Catalyst, classify
from tapeflow.news.labelled import catalyst_examples, ticker_examples
from tapeflow.news.lexicon import VERSION as LEXICON
from tapeflow.news.lexicon import lexicon_label
from tapeflow.news.metrics import Report, classification_report, set_scores
from tapeflow.news.model_registry import configured_model, current_model
from tapeflow.news.sentiment import SentimentModel
from tapeflow.news.sentiment_data import LABELS, stratified_subset
from tapeflow.news.sentiment_sources import Source, SourcedExample, held_out_splits, load_sources
from tapeflow.news.tickers import TAGGER, TickerTable, extract_tickers
from tapeflow.progress import tracked
from warehouse import open_warehouse

ROW_SCHEMA = {"component": pl.String, "version": pl.String, "data": pl.String, "n": pl.Int64,
              "accuracy": pl.Float64, "f1": pl.Float64, "precision": pl.Float64, "recall": pl.Float64}
"""`f1` is macro-F1 for the classifiers (sentiment, catalyst) and the micro F1 over tickers for the extractor."""
ALL_SOURCES = "all sources, test splits"


@dataclass
class Evaluation:
    rows: list[dict[str, object]] = field(default_factory=list)
    reports: dict[str, Report] = field(default_factory=dict)

    def add(self, component: str, version: str, data: str, report: Report) -> None:
        self.rows.append({"component": component, "version": version, "data": data, "n": report.n,
                          "accuracy": report.accuracy, "f1": report.macro_f1})
        self.reports[f"{component} {version} on {data}"] = report

    def table(self) -> pl.DataFrame:
        return pl.DataFrame(self.rows, schema=ROW_SCHEMA).with_columns(pl.col(pl.Float64).round(3))


def resolve_model(settings: Settings, model: str | None) -> tuple[str, str]:
    """(version, path) of a recorded version, a Hugging Face id or path, or the current model."""
    warehouse = open_warehouse(settings)
    return current_model(settings, warehouse) if model is None else configured_model(model, warehouse)


def held_out_sentences(settings: Settings, limit: int | None = None) -> list[SourcedExample]:
    """Every source's test split (all, or a stratified subset): what trained models never see."""
    return stratified_subset(held_out_splits(load_sources(settings.data_dir)), limit)


def add_by_source(into: Evaluation, component: str, version: str, held_out: list[SourcedExample],
                  predicted: list[str]) -> None:
    """A row over every source's test split (with its confusion matrix), then one per source."""
    truth = [e.label for e in held_out]
    into.add(component, version, ALL_SOURCES, classification_report(truth, predicted, LABELS))
    for source in Source:
        picked = [i for i, e in enumerate(held_out) if e.source is source]
        if picked:
            report = classification_report([truth[i] for i in picked], [predicted[i] for i in picked], LABELS)
            into.rows.append({"component": component, "version": version, "data": f"{source.value} test",
                              "n": report.n, "accuracy": report.accuracy, "f1": report.macro_f1})


def evaluate_sentiment(settings: Settings, model: str | None, limit: int | None, into: Evaluation,
                       runtime: Runtime = Runtime.TORCH) -> None:
    held_out = held_out_sentences(settings, limit)
    version, path = resolve_model(settings, model)
    scored = SentimentModel(path, version, runtime).score([e.text for e in held_out],
                                                 work=f"measuring {version} on held-out sentences")
    add_by_source(into, "sentiment", version, held_out, [s.label for s in scored])
    add_by_source(into, "sentiment baseline", LEXICON, held_out, [lexicon_label(e.text) for e in held_out])


def evaluate_catalysts(into: Evaluation) -> None:
    labels = [c.value for c in Catalyst]
    for split in ("dev", "test"):
        examples = catalyst_examples(split)
        report = classification_report([c.value for _, c in examples], [classify(t).value for t, _ in examples], labels)
        into.add("catalyst", TAGGER, f"catalysts {split}", report)


def evaluate_tickers(into: Evaluation) -> None:
    table = TickerTable.load()
    examples = ticker_examples()
    predicted = [frozenset(extract_tickers(text, table=table)) for text, _ in examples]
    precision, recall, f1 = set_scores([truth for _, truth in examples], predicted)
    into.rows.append({"component": "tickers", "version": TAGGER, "data": "tickers", "n": len(examples),
                      "f1": f1, "precision": precision, "recall": recall})


def lexicon_on_held_out(settings: Settings) -> Report | None:
    """The lexicon baseline on every source's test split (None when the labelled data is missing)."""
    try:
        held_out = held_out_sentences(settings)
    except FileNotFoundError:
        return None
    return classification_report([e.label for e in held_out], [lexicon_label(e.text) for e in held_out], LABELS)


def evaluate_all(settings: Settings, model: str | None = None, limit: int | None = None,
                 runtime: Runtime = Runtime.TORCH) -> Evaluation:
    """Sentiment (model, run by `runtime`, and lexicon baseline), catalyst classes and ticker extraction."""
    result = Evaluation()
    with tracked("evaluating news readers", total=3) as tracker:
        tracker.update(0, detail="sentiment")
        evaluate_sentiment(settings, model, limit, result, runtime)
        tracker.update(1, detail="catalyst classes")
        evaluate_catalysts(result)
        tracker.update(2, detail="tickers")
        evaluate_tickers(result)
        tracker.update(3, detail="")
    return result
