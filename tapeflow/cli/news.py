"""`tapeflow news ...` (ingest and read headlines) and `tapeflow nlp ...` (train, evaluate and
apply the sentiment model, the catalyst classifier and the ticker extractor)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import polars as pl
import typer

from tapeflow.cli.console import err, out
from tapeflow.cli.flow_runs import running_flows
from tapeflow.cli.output import print_frame, print_metrics, require_offset
from tapeflow.config import load_settings
from tapeflow.news.evaluation import evaluate_all
from tapeflow.news.metrics import confusion_table
from tapeflow.news.model_registry import NoSentimentModel, current_model
from tapeflow.news.tickers import TAGGER
from warehouse import open_warehouse
from warehouse.query import run_read_only

news_app = typer.Typer(no_args_is_help=True, help="Headlines: ingest them, see the recent catalysts.")
nlp_app = typer.Typer(no_args_is_help=True, help="The sentiment model, the catalyst classifier, the ticker extractor.")


@news_app.command("ingest")
def ingest_command(
    source: Annotated[str | None, typer.Option(help="replay, alpaca, polygon, benzinga, marketaux or tiingo; "
                                                    "default TAPEFLOW_NEWS_SOURCE")] = None,
    symbol: Annotated[list[str] | None, typer.Option("--symbol", "-s", help="repeat for several; default all")] = None,
    start: Annotated[datetime | None, typer.Option(help="ISO-8601 with offset; default: lookback before end")] = None,
    end: Annotated[datetime | None, typer.Option(help="ISO-8601 with offset; default now")] = None,
    lookback_minutes: Annotated[int, typer.Option(help="window length when --start is not given")] = 30,
) -> None:
    """Run the ingest-news flow once: fetch, store, quarantine, tag and score; print the counts."""

    start = require_offset(start, "--start", "2010-08-16T09:30:00-04:00")
    end = require_offset(end, "--end", "2010-08-20T16:00:00-04:00")
    with running_flows(load_settings()):
        from flows.news import ingest_news  # deferred: Prefect takes seconds to import and reads its settings then

        counts = ingest_news(source=source, symbols=symbol or None, start=start, end=end,
                             lookback_minutes=lookback_minutes)
    print_frame(pl.DataFrame([counts]), title="ingest-news")


@news_app.command("stream")
def stream_command(
    symbol: Annotated[list[str] | None, typer.Option("--symbol", "-s", help="repeat for several; default all news")] = None,
    minutes: Annotated[float, typer.Option(help="how long to listen")] = 390,
) -> None:
    """Run the stream-news flow: Alpaca's news websocket, each batch stored, tagged and scored."""

    with running_flows(load_settings()):
        from flows.news_stream import stream_news  # deferred: Prefect takes seconds to import and reads its settings then

        counts = stream_news(symbols=symbol or None, minutes=minutes)
    print_frame(pl.DataFrame([counts]), title="stream-news")


@news_app.command("catalysts")
def catalysts_command(
    symbol: Annotated[str | None, typer.Option("--symbol", "-s", help="only this ticker")] = None,
    since: Annotated[datetime | None, typer.Option(help="published at or after (ISO-8601 with offset)")] = None,
    limit: Annotated[int, typer.Option(help="rows shown")] = 20,
) -> None:
    """The latest headlines with their tickers, catalyst class and sentiment (current model)."""

    since = require_offset(since, "--since", "2010-08-18T00:00:00-04:00") or datetime(1970, 1, 1, tzinfo=UTC)
    try:
        frame = recent_catalysts(open_warehouse(load_settings()), symbol=symbol.upper() if symbol else None,
                                 since=since, limit=limit)
    except NoSentimentModel as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    print_frame(frame, title="recent catalysts (New York time)", max_rows=limit)


def recent_catalysts(warehouse, *, symbol: str | None = None, since: datetime, limit: int = 20) -> pl.DataFrame:
    """Newest headlines first: time, tickers, catalyst, sentiment under the current model."""

    model, _ = current_model(load_settings(), warehouse)
    query = """
        SELECT strftime(n.published_at AT TIME ZONE 'America/New_York', '%Y-%m-%d %H:%M') AS published,
               array_to_string(t.tickers, ' ') AS tickers, t.catalyst,
               s.label || ' ' || printf('%.2f', s.score) AS sentiment, n.headline
        FROM news n
        JOIN news_tags t ON t.source = n.source AND t.id = n.id AND t.tagger = $tagger AND t.news_hash = n.payload_hash
        LEFT JOIN news_scores s ON s.source = n.source AND s.id = n.id AND s.model = $model
                               AND s.news_hash = n.payload_hash
        WHERE n.published_at >= $since AND ($symbol IS NULL OR list_contains(t.tickers, $symbol))
        ORDER BY n.published_at DESC LIMIT $limit
    """
    with warehouse.read() as con:
        return con.sql(query, params={"tagger": TAGGER, "model": model, "since": since, "symbol": symbol,
                                      "limit": limit}).pl()


@nlp_app.command("train")
def train_command(
    subset: Annotated[int | None, typer.Option(help="train on this many sentences (stratified); default all 9,543")] = None,
    epochs: Annotated[int, typer.Option(help="passes over the training sentences")] = 3,
    learning_rate: Annotated[float, typer.Option(help="peak AdamW learning rate")] = 8e-5,
    held_out_limit: Annotated[int | None, typer.Option(help="evaluate on this many held-out sentences; default all")] = None,
) -> None:
    """Run the train-sentiment flow: fine-tune the model, record it and its held-out figures."""

    with running_flows(load_settings()):
        from flows.nlp import train_sentiment  # deferred: Prefect takes seconds to import and reads its settings then

        trained = train_sentiment(subset=subset, epochs=epochs, learning_rate=learning_rate,
                                  held_out_limit=held_out_limit)
    print_metrics(trained, "train-sentiment")


@nlp_app.command("score")
def score_command() -> None:
    """Run the score-news flow: tag and score every stored headline not yet read by the current model."""

    with running_flows(load_settings()):
        from flows.news import score_news  # deferred: Prefect takes seconds to import and reads its settings then

        scored = score_news()
    print_frame(pl.DataFrame([scored]), title="score-news")


@nlp_app.command("models")
def models_command() -> None:
    """Every sentiment model recorded, newest first, with its held-out figures."""

    print_frame(run_read_only(open_warehouse(load_settings()), """
        SELECT version, strftime(trained_at, '%Y-%m-%d %H:%M') AS trained, training_data->>'$.train.rows' AS train_rows,
               round(accuracy, 3) AS accuracy, round(macro_f1, 3) AS macro_f1, held_out, round(train_seconds) AS seconds, path
        FROM sentiment_models ORDER BY trained_at DESC"""), title="sentiment models")


@nlp_app.command("eval")
def eval_command(
    model: Annotated[str | None, typer.Option(help="a recorded version, Hugging Face id or path; default the current model")] = None,
    limit: Annotated[int | None, typer.Option(help="held-out sentences to score (stratified); default all")] = None,
    confusion: Annotated[bool, typer.Option(help="print each confusion matrix")] = True,
) -> None:
    """Accuracy / macro-F1 of the sentiment model on the held-out split against the lexicon
    baseline, of the catalyst classifier on its labelled test split, and precision / recall of
    the ticker extractor on its labelled set."""

    try:
        results = evaluate_all(load_settings(), model=model, limit=limit)
    except (NoSentimentModel, FileNotFoundError, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    print_frame(results.table(), title="tapeflow nlp eval", max_rows=20)
    if confusion:
        for title, report in results.reports.items():
            out.print(f"\n[bold]{title}[/bold] (rows: true label, columns: predicted)")
            out.print(confusion_table(report), soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(news_app, name="news")
    app.add_typer(nlp_app, name="nlp")

