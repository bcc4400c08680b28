"""`tapeflow news ...`: ingest, stream and read headlines (the `tapeflow nlp ...` commands,
registered here too, live in `tapeflow.cli.nlp`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import polars as pl
import typer

from tapeflow.cli.console import err
from tapeflow.cli.flow_runs import running_flows
from tapeflow.cli.nlp import nlp_app
from tapeflow.cli.output import check_option, configured, print_frame, require_offset
from tapeflow.config import Settings, load_settings
from tapeflow.news import NEWS_SOURCE_NAMES
from tapeflow.news.model_registry import NoSentimentModel, current_model
from tapeflow.news.tickers import TAGGER
from tapeflow.venues.configured import news_source
from warehouse import open_warehouse

news_app = typer.Typer(no_args_is_help=True, help="Headlines: ingest them, see the recent catalysts.")


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
    settings = load_settings()
    named_by = "--source" if source else "TAPEFLOW_NEWS_SOURCE"
    source = source or settings.news_source
    check_option(named_by, source in NEWS_SOURCE_NAMES, f"one of {', '.join(NEWS_SOURCE_NAMES)}", source,
                 "--source replay")
    configured(None, lambda: news_source(source, settings)).close()  # a missing key: one line, before Prefect
    with running_flows(settings):
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

    settings = load_settings()
    _check_stream_keys(settings)
    with running_flows(settings):
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


def _check_stream_keys(settings: Settings) -> None:
    """Exit 2 in one line, before Prefect starts, when the Alpaca keys the stream needs are missing."""
    from tapeflow.venues.alpaca.news_stream import AlpacaNewsStream  # deferred: alpaca-py, only for the stream

    configured(None, lambda: AlpacaNewsStream(settings))


def register(app: typer.Typer) -> None:
    app.add_typer(news_app, name="news")
    app.add_typer(nlp_app, name="nlp")

