"""`tapeflow nlp ...`: train, list, choose, apply and measure the sentiment model (and measure
the catalyst classifier and the ticker extractor)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from tapeflow.cli.console import err, out, refuse
from tapeflow.cli.flow_runs import running_flows
from tapeflow.cli.model_listing import ModelLine, listing
from tapeflow.cli.output import OutputFormat, check_option, print_frame, print_metrics
from tapeflow.config import Settings, load_settings
from tapeflow.model import Runtime
from tapeflow.news.evaluation import evaluate_all, lexicon_on_held_out
from tapeflow.news.lexicon import VERSION as LEXICON
from tapeflow.news.metrics import confusion_table
from tapeflow.news.model_registry import (
    ChoiceReason,
    NoSentimentModel,
    choose_model,
    current_model,
    weights_present,
)
from tapeflow.news.sentiment import TrainParams
from tapeflow.news.sentiment_loso import LOSO_PARAMS, leave_one_source_out, save_results
from tapeflow.news.sentiment_sources import Source
from warehouse import Warehouse, open_warehouse
from warehouse.connection import WarehouseMissing

nlp_app = typer.Typer(no_args_is_help=True, help="The sentiment model, the catalyst classifier, the ticker extractor.")

MODELS_QUERY = """
    SELECT version, trained_at, base_model, path, training_data->>'$.train.rows' AS train_rows,
           report->>'$.n' AS held_out_rows, accuracy, macro_f1, held_out, train_seconds
    FROM sentiment_models ORDER BY trained_at DESC
"""



@nlp_app.command("train")
def train_command(
    subset: Annotated[int | None, typer.Option(help="train on this many sentences (stratified); default all 7,263 "
                                                   "of the balanced mix")] = None,
    epochs: Annotated[int, typer.Option(help="passes over the training sentences")] = 2,
    learning_rate: Annotated[float, typer.Option(help="peak AdamW learning rate")] = 8e-5,
    held_out_limit: Annotated[int | None, typer.Option(help="evaluate on this many held-out sentences; default all")] = None,
    make_current: Annotated[bool, typer.Option("--make-current", help="make the new model current even if it "
                                                                       "does not beat the current one")] = False,
) -> None:
    """Run the train-sentiment flow: fine-tune the model, record it and its held-out figures; it
    becomes current only if it beats the current model (or the lexicon baseline)."""

    settings = load_settings()
    with running_flows(settings):
        from flows.nlp import train_sentiment  # deferred: Prefect takes seconds to import and reads its settings then

        trained = train_sentiment(subset=subset, epochs=epochs, learning_rate=learning_rate,
                                  held_out_limit=held_out_limit, make_current=make_current)
    verdict = str(trained.pop("verdict"))
    print_metrics(trained, "train-sentiment")
    scored = f"; scored {trained['headlines_scored']:,} stored headlines with it" if trained["current"] else ""
    out.print(verdict + scored, markup=False, highlight=False, soft_wrap=True)
    _note_override(settings)


@nlp_app.command("use")
def use_command(
    version: Annotated[str, typer.Argument(help="a version `tapeflow nlp models` lists")],
) -> None:
    """Make VERSION the current sentiment model and score every stored headline with it."""

    settings = load_settings()
    if settings.sentiment_model:
        refuse(f"TAPEFLOW_SENTIMENT_MODEL={settings.sentiment_model} chooses the model and overrides `tapeflow nlp use`: "
               "unset it first")
    warehouse = open_warehouse(settings)
    models = _recorded(warehouse)
    if version == LEXICON:
        refuse(f"{LEXICON} is the yardstick models are measured against, not a model to score with; "
               f"known: {', '.join(models) or 'none yet (`tapeflow nlp train`)'}")
    if version not in models:
        refuse(f"unknown sentiment model {version!r}; known: {', '.join(models)}" if models else
               f"unknown sentiment model {version!r}: none is recorded; train one with `tapeflow nlp train`")
    path, base_model = models[version]
    if not weights_present(path, base_model):
        refuse(f"{version}'s weights are gone from {path}: retrain it, or choose another (`tapeflow nlp models`)")
    previous = _current(settings, warehouse)
    if previous == version:
        out.print(f"{version} is current already", markup=False, highlight=False)
        return
    choose_model(warehouse, version, ChoiceReason.USE)
    with running_flows(settings):
        from flows.news import score_news  # deferred: Prefect takes seconds to import and reads its settings then

        scored = score_news()
    out.print(f"{version} is current (was {previous or 'none'}); scored {scored['scored']:,} stored headlines with it",
              markup=False, highlight=False, soft_wrap=True)


@nlp_app.command("score")
def score_command() -> None:
    """Run the score-news flow: tag and score every stored headline not yet read by the current model."""

    with running_flows(load_settings()):
        from flows.news import score_news  # deferred: Prefect takes seconds to import and reads its settings then

        scored = score_news()
    print_frame(pl.DataFrame([scored]), title="score-news")


@nlp_app.command("models")
def models_command(
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="table (80 columns), csv or json (every column)")]
    = OutputFormat.TABLE,
) -> None:
    """Every sentiment model recorded, newest first, with its held-out figures; `*` marks the current one."""

    settings = load_settings()
    warehouse = open_warehouse(settings)
    current = _current(settings, warehouse)  # first: a configured model is recorded when first named
    try:
        with warehouse.read() as con:
            frame = con.sql(MODELS_QUERY).pl()
    except WarehouseMissing:
        frame = pl.DataFrame()
    if fmt is not OutputFormat.TABLE:
        print_frame(frame.with_columns(current=pl.col("version") == current) if frame.height else frame, fmt)
        return
    lines = [ModelLine(row["version"], row["trained_at"], _int(row["train_rows"]), _int(row["held_out_rows"]),
                       row["accuracy"], row["macro_f1"]) for row in frame.iter_rows(named=True)] if frame.height else []
    if (lexicon := lexicon_on_held_out(settings)) is not None:  # the yardstick a trained model must beat
        lines.append(ModelLine(f"{LEXICON} (baseline)", None, None, lexicon.n, lexicon.accuracy, lexicon.macro_f1))
    out.print("sentiment models, newest first; * the current one; figures on held-out sentences", style="bold",
              highlight=False)
    for line in listing(lines, current):
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    if current is None:
        out.print("no model is current: " + ("`tapeflow nlp use VERSION` makes one current" if frame.height else
                                             "train one with `tapeflow nlp train`"), markup=False, highlight=False)
    else:
        out.print(f"current: {current}", markup=False, highlight=False)
    _note_override(settings)


@nlp_app.command("eval")
def eval_command(
    model: Annotated[str | None, typer.Option(help="a recorded version, Hugging Face id or path; default the current model")] = None,
    limit: Annotated[int | None, typer.Option(help="held-out sentences to score (stratified); default all")] = None,
    confusion: Annotated[bool, typer.Option(help="print each confusion matrix")] = True,
    runtime: Annotated[Runtime, typer.Option(help="what runs the model: torch (the reference), or ONNX Runtime on its "
                                                  "export (made beside the weights on first use)")] = Runtime.TORCH,
) -> None:
    """Accuracy / macro-F1 of the sentiment model on every source's held-out split (and on each
    source's) against the lexicon baseline, of the catalyst classifier on its labelled test split, and precision / recall of
    the ticker extractor on its labelled set."""

    try:
        results = evaluate_all(load_settings(), model=model, limit=limit, runtime=runtime)
    except (NoSentimentModel, FileNotFoundError, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    print_frame(results.table(), title="tapeflow nlp eval", max_rows=20)
    if confusion:
        for title, report in results.reports.items():
            out.print(f"\n[bold]{title}[/bold] (rows: true label, columns: predicted)")
            out.print(confusion_table(report), soft_wrap=True)


@nlp_app.command("loso")
def loso_command(
    source: Annotated[list[Source] | None, typer.Option("--source", help="leave out only this source (repeatable); "
                                                                          "default each in turn")] = None,
    epochs: Annotated[int, typer.Option(help="passes over the training sentences of each fold")] = 2,
    limit: Annotated[int | None, typer.Option(help="sentences per source, for training and for scoring "
                                                   "(stratified); default all")] = None,
    save: Annotated[Path | None, typer.Option(help="also write the table and each confusion matrix here, as JSON")]
    = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="table, csv or json")] = OutputFormat.TABLE,
) -> None:
    """Leave one source out: for each labelled source, train the sentiment recipe on the train
    splits of the others and score every sentence of it (minutes to an hour a fold on 2 cores; `--limit 2000` caps the tweets)."""

    check_option("--epochs", epochs >= 1, "at least 1", epochs, "--epochs 2")
    check_option("--limit", limit is None or limit >= 10, "at least 10 (a few of each label)", limit, "--limit 200")
    settings = load_settings()
    params = TrainParams(**{**LOSO_PARAMS, "epochs": epochs})
    try:
        results = leave_one_source_out(settings.data_dir, settings.home.resolve() / "models" / "loso", params,
                                       sources=list(dict.fromkeys(source or Source)), per_source_limit=limit)
    except (FileNotFoundError, ValueError) as exc:
        refuse(str(exc))
    if save is not None:
        save_results(results, save)
    frame = pl.DataFrame([r.row() for r in results]).drop("setting").with_columns(pl.col(pl.Float64).round(3))
    print_frame(frame, fmt, title="tapeflow nlp loso: each source left out of training, then scored whole")


def _recorded(warehouse: Warehouse) -> dict[str, tuple[str, str]]:
    """Every recorded version, newest first: (path, base model)."""
    try:
        with warehouse.read() as con:
            rows = con.execute("SELECT version, path, base_model FROM sentiment_models ORDER BY trained_at DESC").fetchall()
    except WarehouseMissing:
        return {}
    return {version: (path, base) for version, path, base in rows}


def _current(settings: Settings, warehouse: Warehouse) -> str | None:
    try:
        return current_model(settings, warehouse)[0]
    except NoSentimentModel:
        return None


def _note_override(settings: Settings) -> None:
    if settings.sentiment_model:
        out.print(f"TAPEFLOW_SENTIMENT_MODEL={settings.sentiment_model} is set: it is the model headlines are scored "
                  "with, whatever is recorded as current", style="yellow", markup=False, highlight=False)


def _int(value: str | None) -> int | None:
    return None if value is None else int(value)
