"""The `tapeflow` command: demo, ingest, SQL, backtests, broker, market clock and the local Prefect stack."""

from __future__ import annotations

import webbrowser
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.table import Table

from tapeflow.backtest.loading import history_between
from tapeflow.backtest.runs import load_run
from tapeflow.calendar.exchange import NEW_YORK, get_calendar, ny_day_bounds
from tapeflow.calendar.hours import day_hours, next_open_words
from tapeflow.cli.actions import actions_app
from tapeflow.cli.archive import archive_app
from tapeflow.cli.backtest import backtest_command, bar_file_history
from tapeflow.cli.broker import broker_app
from tapeflow.cli.console import EXIT_BUSY as EXIT_BUSY  # the exit codes, where tests and scripts read them
from tapeflow.cli.console import EXIT_REFUSED, err, out
from tapeflow.cli.files_ingest import ingest_files_command
from tapeflow.cli.flow_runs import running_flows
from tapeflow.cli.mcp import mcp_app
from tapeflow.cli.monitor import alerts_command, monitor_command
from tapeflow.cli.news import recent_catalysts
from tapeflow.cli.news import register as register_news
from tapeflow.cli.output import (
    BarsOpt,
    EndOpt,
    OutputFormat,
    ParamOpt,
    StartOpt,
    StrategyArg,
    SymbolOpt,
    cell,
    check_option,
    check_window,
    chosen_strategy,
    configured,
    parse_params,
    print_frame,
    print_metrics,
    require_offset,
    require_sentiment_model,
    require_warehouse,
    strategy_window,
)
from tapeflow.cli.postgres import postgres_app
from tapeflow.cli.promotion import register as register_promotion
from tapeflow.cli.research import register as register_research
from tapeflow.cli.serve import serve_command
from tapeflow.cli.sql import sql_command
from tapeflow.cli.trade import register as register_session
from tapeflow.cli.universe import universe_app
from tapeflow.cli.worker import worker_command
from tapeflow.config import load_settings
from tapeflow.model import AdjustMode, Timeframe
from tapeflow.news.model_registry import current_model
from tapeflow.research.lookahead import check_lookahead
from tapeflow.research.summaries import params_text
from tapeflow.strategy.history import History
from tapeflow.strategy.registry import available
from tapeflow.venues.configured import market_data, watchlist_source
from warehouse import Warehouse, WarehouseMissing, open_warehouse
from warehouse.examples import DEMO_EXAMPLES
from warehouse.query import run_read_only

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
app.command("sql")(sql_command)


@app.command()
def ingest(
    source: Annotated[
        str | None, typer.Option(help="replay, alpaca, polygon, finnhub or ibkr; default TAPEFLOW_MARKET_DATA_SOURCE")
    ] = None,
    timeframe: Annotated[Timeframe, typer.Option(help="1d or 1m")] = Timeframe.DAY,
    start: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="first New York day")] = datetime(2009, 8, 21),
    end: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="last New York day")] = datetime(2010, 8, 20),
    symbol: Annotated[list[str] | None, typer.Option("--symbol", "-s", help="repeat for several; default all")] = None,
    files: Annotated[str | None, typer.Option(
        "--files", help="your CSV, CSV.gz or Parquet bars (a path or quoted glob) in place of --source")] = None,
) -> None:
    """Run the ingest-bars flow once and print its counts (or, with --files, ingest your own bar files)."""
    if files is not None:
        counts = ingest_files_command(files, timeframe)
        print_frame(pl.DataFrame([counts.as_dict()]), title=f"ingest --files {files} {timeframe}")
        return
    settings = load_settings()
    check_window(start, end)
    configured("--source", lambda: market_data(source or settings.market_data_source, settings))
    with running_flows(settings):
        from flows.ingest import ingest_bars  # deferred: Prefect takes seconds to import and reads its settings then

        counts = ingest_bars(source=source, symbols=symbol or None, timeframe=timeframe,
                             start=start.date(), end=end.date())
    print_frame(pl.DataFrame([counts]), title=f"ingest-bars {source or load_settings().market_data_source} {timeframe}")


@app.command()
def snapshot(
    source: Annotated[str | None, typer.Option(help="scanner, bullalert or bullalert-mcp; default TAPEFLOW_WATCHLIST_SOURCE")] = None,
    as_of: Annotated[datetime | None, typer.Option("--as-of", help="ISO-8601 with offset; default now")] = None,
    limit: Annotated[int, typer.Option(help="names to keep")] = 20,
) -> None:
    """Run the snapshot-watchlist flow once and print what it stored (or why it skipped)."""
    as_of = require_offset(as_of, "--as-of", "2010-05-07T09:00:00-04:00")
    check_option("--limit", 1 <= limit <= 500, "between 1 and 500", limit, "--limit 20")
    settings = load_settings()
    if (source or settings.watchlist_source) == "scanner":  # the scanner ranks the warehouse's bars
        require_warehouse(settings)
    else:
        configured("--source", lambda: watchlist_source(source or settings.watchlist_source, settings))
    with running_flows(settings):
        from flows.watchlist import snapshot_watchlist  # deferred: Prefect takes seconds to import and reads its settings then

        result = snapshot_watchlist(source=source, as_of=as_of, limit=limit)
    print_frame(pl.DataFrame([result]), title="snapshot-watchlist")


def _history_from(bars_file: str | None, timeframe: str, symbols: list[str] | None, start: datetime, end: datetime,
                  watchlist: bool, news: bool = False) -> History:
    """History from a bars file, or from the warehouse for New York days start..end."""

    if bars_file:
        return bar_file_history(bars_file, timeframe, symbols)
    first, last = ny_day_bounds(start.date())[0], ny_day_bounds(end.date())[1]
    history, _ = history_between(load_settings(), timeframe, symbols, first, last, watchlist=watchlist, news=news)
    return history


app.command("backtest")(backtest_command)


@app.command("strategies")
def strategies_command(
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.TABLE,
) -> None:
    """Every strategy found (built-ins, installed packages, TAPEFLOW_STRATEGY_PATH) with its parameters."""
    try:
        known = available()
    except ValueError as exc:  # a user's strategy file that does not load, or two strategies with one name
        err.print(f"[red]{exc}[/red]", soft_wrap=True)
        raise typer.Exit(EXIT_REFUSED) from None
    rows = [
        {"strategy": name, "timeframe": cls.timeframe.value, "parameter": p.name, "type": p.kind.__name__,
         "default": str(p.default), "range": f"{p.low}..{p.high}", "about": p.doc}
        for name, cls in known.items() for p in cls.params
    ]
    frame = pl.DataFrame(rows, schema=dict.fromkeys(
        ("strategy", "timeframe", "parameter", "type", "default", "range", "about"), pl.String))
    if fmt is not OutputFormat.TABLE:
        print_frame(frame, fmt)
        return
    for name, cls in known.items():
        about = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print_frame(frame.filter(pl.col("strategy") == name).drop("strategy", "timeframe"),
                    title=f"{name} ({cls.timeframe.value} bars) {about}".rstrip(), max_rows=len(rows))


@app.command("check-lookahead")
def check_lookahead_command(
    strategy: StrategyArg,
    param: ParamOpt = None,
    bars: BarsOpt = None,
    symbol: SymbolOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    cuts: Annotated[int, typer.Option(help="random cut points to test")] = 20,
    seed: int = 0,
    adjust: Annotated[AdjustMode, typer.Option(help="the prices decided on, as `tapeflow backtest --adjust`")]
        = AdjustMode.SPLITS,
) -> None:
    """Rerun a strategy on histories cut at random points; exit 1 if any decision changes."""

    chosen = chosen_strategy(strategy, parse_params(param))
    check_option("--cuts", cuts >= 1, "at least 1", cuts, "--cuts 20")
    start, end = strategy_window(chosen.timeframe, start, end)
    if bars is None:
        require_warehouse(load_settings())
        require_sentiment_model(load_settings(), chosen)
    try:
        history = _history_from(bars, chosen.timeframe, symbol, start, end, watchlist=chosen.uses_watchlist,
                                news=chosen.uses_news)
    except (ValueError, OSError, LookupError) as exc:  # LookupError: no sentiment model for a news strategy
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    report = check_lookahead(chosen, history, n=cuts, seed=seed, adjust=adjust)
    (out if report.passed else err).print(report.summary(), soft_wrap=True)
    raise typer.Exit(0 if report.passed else 1)


@app.command()
def report(
    run_id: Annotated[str, typer.Argument(help="a backtest_runs.run_id")],
    open_it: Annotated[bool, typer.Option("--open", help="open it in the browser")] = False,
) -> None:
    """Print (or open) a backtest's HTML report, writing it again from the warehouse if it is gone."""

    from tapeflow.backtest.report import render_report  # deferred: matplotlib

    settings = load_settings()
    try:
        run, backtest = load_run(open_warehouse(settings), run_id)
    except (LookupError, WarehouseMissing) as exc:
        err.print(f"[red]{exc}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    path = Path(run["report_path"]) if run["report_path"] else None
    if path is None or not path.exists():
        path = render_report(backtest.result, run_id=run_id, title=f"{backtest.strategy} ({params_text(backtest.params)})",
                             metrics=backtest.metrics, assumptions=backtest.assumptions,
                             out_dir=settings.home.resolve() / "reports")
    out.print(str(path), soft_wrap=True)
    if open_it:
        webbrowser.open(path.as_uri())


@app.command()
def clock(
    at: Annotated[datetime | None, typer.Option(help="an instant, ISO-8601 with offset; default now")] = None,
) -> None:
    """Show the market phase at an instant, that day's open and close (or why it is closed) and
    the next regular open (XNYS)."""

    t = require_offset(at, "--at", "2026-11-27T12:00:00-05:00") or datetime.now(UTC)
    calendar = get_calendar()
    day = calendar.session_date(t)
    # Before the calendar's last day, so that a next open is known too.
    check_option("--at", calendar.start <= day < calendar.end, f"within {calendar.start}..{calendar.end} "
                 f"({calendar.name} calendar)", t.isoformat(), "--at 2026-11-27T12:00:00-05:00")
    out.print(f"{t.astimezone(NEW_YORK):%Y-%m-%d %H:%M %Z}: {calendar.phase_at(t).value}")
    out.print(f"{day:%a %Y-%m-%d}: {day_hours(day, calendar)}")
    out.print(f"next regular open: {next_open_words(t, calendar, utc=True)}")


@app.command()
def demo() -> None:
    """Ingest the bundled real data through the flow, then query the warehouse."""

    settings = load_settings()
    out.rule("tapeflow demo")
    out.print("Ingesting the bundled real data (data/NOTICE) through the [bold]ingest-bars[/bold] flow "
              "on Prefect's local API ...")
    with running_flows(settings):
        from flows.demo import demo as demo_flow  # deferred: Prefect takes seconds to import and reads its settings then

        counts = demo_flow()
    columns = ("fetched", "inserted", "updated", "unchanged", "quarantined", "stored")
    ingests = {name: c for name, c in counts.items()
               if name not in ("backtest", "walk_forward", "session", "sentiment_model")}
    print_frame(pl.DataFrame([{"batch": name, **{k: c[k] for k in columns}} for name, c in ingests.items()]),
                title="rows fetched, stored (new + changed), unchanged, quarantined")
    result = counts["backtest"]
    headline = ("total_return", "annual_return", "sharpe", "sortino", "max_drawdown", "trades", "win_rate",
                "profit_factor", "exposure", "commissions", "slippage", "final_equity")
    print_metrics({k: result.get(k) for k in headline},
                   "backtest: watchlist_momentum on the scanner's pre-market lists, 2009-09-21..2010-08-20 (retail-default costs)")
    out.print(f"report: {result['report']}", soft_wrap=True)
    folds = counts["walk_forward"]
    print_metrics({k: folds.get(f"oos_{k}") for k in headline},
                   f"walk-forward: sma_cross, {folds['folds']} folds (120 sessions train / 40 test), out of sample only")
    out.print(f"report: {folds['report']}", soft_wrap=True)
    _print_session(counts["session"])
    warehouse = open_warehouse(settings)
    _print_catalysts(warehouse, counts["sentiment_model"])
    for example in DEMO_EXAMPLES:
        out.print(f"\n[bold]{example.title}[/bold]")
        out.print(f"[dim]{example.sql}[/dim]")
        print_frame(run_read_only(warehouse, example.sql), max_rows=10)
    out.rule("next")
    out.print(f"""Warehouse:  {warehouse.path}
The command lives in the project's virtualenv: `source .venv/bin/activate` first, or call .venv/bin/tapeflow.
Query it:   tapeflow sql "SELECT symbol, count(*) AS bars FROM bars GROUP BY symbol ORDER BY bars DESC LIMIT 5"
            tapeflow sql "SELECT * FROM quarantine LIMIT 3" --format json
Ingest:     tapeflow ingest --timeframe 1m --symbol SPY --start 2011-03-01 --end 2011-03-31
Watchlist:  tapeflow snapshot --source scanner --as-of 2010-05-07T09:00:00-04:00
Actions:    tapeflow actions list; tapeflow actions findings   (what backtests price across; the jumps none explains)
Universe:   tapeflow universe show sp500-2010 --on 2010-01-04   (the panel's own list: survivorship-biased)
News:       tapeflow news catalysts; tapeflow news ingest --source replay --start 2010-08-16T00:00:00Z
            tapeflow nlp train (the full sentiment model, ~10 min on 2 cores); tapeflow nlp eval; tapeflow nlp models
Backtest:   tapeflow backtest sma_cross -p fast=10 -p slow=30 --costs retail-default
            tapeflow backtest news_catalyst   (SPY minutes, 2011-01-03..2011-03-31, on the sample headlines)
            tapeflow walk-forward sma_cross; tapeflow perturb sma_cross -p fast=10 -p slow=30
            tapeflow check-lookahead watchlist_momentum
            tapeflow report RUN_ID --open     (run ids: tapeflow sql "SELECT run_id, strategy, metrics->>'sharpe' FROM backtest_runs")
Clock:      tapeflow clock
Broker:     tapeflow broker status     (the simulated paper broker by default; see docs/brokers.md)
Trade:      tapeflow promote opening_range --to paper; tapeflow trade opening_range --replay-day 2011-03-08
            tapeflow kill-switch on --reason "..."; tapeflow monitor; tapeflow sessions
UI:         make serve   (Prefect UI on http://127.0.0.1:4200 with the deployments of prefect.yaml)
Agents:     tapeflow mcp config   (the warehouse, read-only, for Claude Desktop or Cursor: docs/agents.md)
Run again:  make demo    (idempotent: a second run stores nothing new)""", soft_wrap=True)


def _print_catalysts(warehouse, trained: dict[str, object]) -> None:
    """The bundled headlines as a strategy sees them: tickers, catalyst class, sentiment."""

    out.print("\n[bold]Catalysts[/bold] in the sample headlines (written for the demo, data/NOTICE)")
    if trained:
        out.print(f"No sentiment model was current, so the demo tuned a quick one ({trained['train_rows']} sentences, "
                  f"one epoch, {trained['train_seconds']} s): {trained['verdict']}. `tapeflow nlp train` trains the "
                  "full model.", soft_wrap=True)
        if not trained["current"]:
            return
    else:
        out.print(_model_line(warehouse), soft_wrap=True)
    frame = recent_catalysts(warehouse, since=datetime(2010, 8, 1, tzinfo=UTC), limit=30)
    frame = frame.rename({"published": "New York"})
    # One line a headline, cut to the terminal: the headline is the column that gives way.
    widths = {c: max([len(c), *(len(cell(v)) for v in frame[c])]) for c in frame.columns if c != "headline"}
    room = max(20, out.width - sum(widths.values()) - 3 * len(frame.columns) - 1)
    frame = frame.with_columns(pl.when(pl.col("headline").str.len_chars() > room)
                               .then(pl.col("headline").str.slice(0, room - 1) + "…").otherwise(pl.col("headline")))
    table = Table()
    for name in frame.columns:
        table.add_column(name, no_wrap=True)
    for row in frame.iter_rows():
        table.add_row(*(cell(v) for v in row))
    out.print(table)


def _model_line(warehouse) -> str:
    """The sentiment model in use and its held-out figures, when it has them."""

    version, _ = current_model(load_settings(), warehouse)
    with warehouse.read() as con:
        accuracy, macro_f1 = con.execute("SELECT accuracy, macro_f1 FROM sentiment_models WHERE version = ?",
                                         [version]).fetchone() or (None, None)
    if accuracy is None:
        return f"sentiment model {version} (not evaluated: tapeflow nlp eval --model {version})"
    return f"sentiment model {version}: held-out accuracy {accuracy:.3f}, macro-F1 {macro_f1:.3f}"


def _print_session(session: dict[str, object]) -> None:
    """A replayed paper session: its orders and fills, P&L and alerts."""

    out.rule(f"paper session replayed: {session['session_id']}")
    replay = Warehouse(str(session["warehouse"]))
    print_frame(run_read_only(replay, (
        "SELECT strftime(o.created_at AT TIME ZONE 'America/New_York', '%H:%M') AS at, o.symbol, o.side, o.qty, "
        "o.order_type || coalesce(' ' || o.stop_price, '') AS type, o.status, o.avg_fill_price AS price, "
        "d.reason AS why "
        "FROM orders o LEFT JOIN session_decisions d USING (client_order_id) ORDER BY o.created_at")),
        title="orders (decided, recorded, then sent to the simulated broker)")
    print_frame(run_read_only(replay, (
        "SELECT strftime(ts AT TIME ZONE 'America/New_York', '%H:%M') AS at, symbol, side, qty, price, "
        "commission FROM fills ORDER BY ts")), title="fills (times in New York)")
    print_metrics({k: session.get(k) for k in ("cycles", "decisions", "orders_sent", "fills", "realized_pnl",
                                                 "equity_start", "equity_end", "reconciled")}, "the day")
    alerts = session.get("alerts") or []
    out.print("alerts: " + ("; ".join(map(str, alerts)) if alerts else "none"), soft_wrap=True)
    out.print(f"its rows: {session['warehouse']}", soft_wrap=True)


app.command("serve")(serve_command)
app.command("worker")(worker_command)


def _register_subcommands() -> None:

    app.add_typer(broker_app, name="broker")
    app.add_typer(actions_app, name="actions")
    app.add_typer(archive_app, name="archive")
    app.add_typer(universe_app, name="universe")
    app.add_typer(mcp_app, name="mcp")
    app.add_typer(postgres_app, name="postgres")
    app.command("monitor")(monitor_command)
    app.command("alerts")(alerts_command)
    register_promotion(app)  # promote, promotions, paper-gap
    register_session(app)  # trade, sessions, kill-switch
    register_news(app)  # news ingest|catalysts, nlp train|eval|score|models
    register_research(app)  # walk-forward, perturb


_register_subcommands()


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
