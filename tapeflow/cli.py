"""The `tapeflow` command: demo, ingest, SQL, backtests, broker, market clock and the local Prefect stack."""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Annotated

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from tapeflow.config import Settings, load_settings, prefect_defaults
from tapeflow.model import Timeframe

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
out = Console()
err = Console(stderr=True, soft_wrap=True)

EXIT_BUSY = 3
EXIT_REFUSED = 2


class OutputFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


def prefect_environment(settings: Settings) -> None:
    """Apply tapeflow's Prefect defaults unless the user chose otherwise; must run before
    prefect is imported."""
    for name, value in {**prefect_defaults(settings), "PREFECT_LOGGING_LEVEL": "WARNING"}.items():
        os.environ.setdefault(name, value)
    os.makedirs(os.environ["PREFECT_HOME"], exist_ok=True)


def require_offset(value: datetime | None, option: str, example: str) -> datetime | None:
    """An aware instant from the command line, or exit 1 saying the option needs an offset."""
    if value is not None and value.tzinfo is None:
        err.print(f"[red]{option} needs a UTC offset, e.g. {example}[/red]")
        raise typer.Exit(1)
    return value


def print_frame(frame: pl.DataFrame, fmt: OutputFormat = OutputFormat.TABLE, *, title: str | None = None,
                max_rows: int = 50) -> None:
    """Print a query result as a table, CSV or JSON (rows as objects)."""
    if fmt is OutputFormat.CSV:
        sys.stdout.write(frame.write_csv())
        return
    if fmt is OutputFormat.JSON:
        sys.stdout.write(frame.write_json() + "\n")
        return
    table = Table(title=title, title_justify="left", title_style="bold")
    for name, dtype in frame.schema.items():
        table.add_column(name, justify="right" if dtype.is_numeric() else "left")
    for row in frame.head(max_rows).iter_rows():
        table.add_row(*(_cell(v) for v in row))
    out.print(table)
    shown = min(frame.height, max_rows)
    out.print(f"[dim]{frame.height} row{'s' if frame.height != 1 else ''}"
              + (f", first {shown} shown" if shown < frame.height else "") + "[/dim]")


def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".") if abs(value) < 1e15 else f"{value:.6g}"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="read-only SQL: SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN")],
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="table, csv or json")] = OutputFormat.TABLE,
    max_rows: Annotated[int, typer.Option(help="rows shown in table format")] = 50,
) -> None:
    """Query the warehouse read-only and print the result."""
    from warehouse import WarehouseBusy, WarehouseMissing, open_warehouse
    from warehouse.query import WriteRefused, run_read_only

    settings = load_settings()
    warehouse = open_warehouse(settings, on_busy=lambda msg: err.print(f"[yellow]{msg}[/yellow]"))
    try:
        frame = run_read_only(warehouse, query)
    except WriteRefused as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_REFUSED) from None
    except WarehouseBusy as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_BUSY) from None
    except (WarehouseMissing, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    except Exception as exc:  # DuckDB's own errors (unknown table, type mismatch) are the user's to read
        err.print(f"[red]{type(exc).__name__}: {exc}[/red]")
        raise typer.Exit(1) from None
    print_frame(frame, fmt, max_rows=max_rows)


@app.command()
def ingest(
    source: Annotated[str | None, typer.Option(help="replay, alpaca, polygon, finnhub or ibkr; default TAPEFLOW_MARKET_DATA_SOURCE")] = None,
    timeframe: Annotated[Timeframe, typer.Option(help="1d or 1m")] = Timeframe.DAY,
    start: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="first New York day")] = datetime(2009, 8, 21),
    end: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="last New York day")] = datetime(2010, 8, 20),
    symbol: Annotated[list[str] | None, typer.Option("--symbol", "-s", help="repeat for several; default all")] = None,
) -> None:
    """Run the ingest-bars flow once and print its counts."""
    prefect_environment(load_settings())
    from flows.ingest import ingest_bars

    counts = ingest_bars(source=source, symbols=symbol or None, timeframe=timeframe,
                         start=start.date(), end=end.date())
    print_frame(pl.DataFrame([counts]), title=f"ingest-bars {source or load_settings().market_data_source} {timeframe}")


@app.command()
def snapshot(
    source: Annotated[str | None, typer.Option(help="scanner or bullalert; default TAPEFLOW_WATCHLIST_SOURCE")] = None,
    as_of: Annotated[datetime | None, typer.Option("--as-of", help="ISO-8601 with offset; default now")] = None,
    limit: Annotated[int, typer.Option(help="names to keep")] = 20,
) -> None:
    """Run the snapshot-watchlist flow once and print what it stored (or why it skipped)."""
    as_of = require_offset(as_of, "--as-of", "2010-05-07T09:00:00-04:00")
    prefect_environment(load_settings())
    from flows.watchlist import snapshot_watchlist

    result = snapshot_watchlist(source=source, as_of=as_of, limit=limit)
    print_frame(pl.DataFrame([result]), title="snapshot-watchlist")


def _print_metrics(metrics: dict[str, object], title: str) -> None:
    print_frame(pl.DataFrame({"metric": list(metrics), "value": [_cell(v) for v in metrics.values()]}), title=title, max_rows=60)


def _params(pairs: list[str] | None) -> dict[str, float]:
    """--param fast=10 --param slow=30 as a dict (the strategy checks types and ranges)."""
    params: dict[str, float] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"--param takes name=value, got {pair!r}")
        params[name.strip()] = float(value)
    return params


def _history_from(bars_file: str | None, timeframe: str, symbols: list[str] | None, start: datetime, end: datetime,
                  watchlist: bool, news: bool = False):
    """History from a bars file, or from the warehouse for New York days start..end."""
    from tapeflow.calendar import NEW_YORK
    from tapeflow.sim.history import History
    from tapeflow.sim.loading import history_between

    if bars_file:
        history = History.from_file(bars_file)
        return History(bars=history.bars.filter(pl.col("symbol").is_in(symbols))) if symbols else history
    first = start.replace(tzinfo=NEW_YORK)
    last = (end + timedelta(days=1)).replace(tzinfo=NEW_YORK)
    history, _ = history_between(load_settings(), timeframe, symbols, first, last, watchlist=watchlist, news=news)
    return history


@app.command()
def backtest(
    strategy: Annotated[str, typer.Argument(help="sma_cross, watchlist_momentum, opening_range, news_catalyst")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value, repeatable")] = None,
    bars: Annotated[str | None, typer.Option(help="Parquet/CSV bars file instead of the warehouse")] = None,
    symbol: Annotated[list[str] | None, typer.Option("--symbol", "-s")] = None,
    start: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"])] = datetime(2009, 8, 21),
    end: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"])] = datetime(2010, 8, 20),
    cash: float = 100_000.0,
    costs: Annotated[str, typer.Option(help="retail, flat-commission or none")] = "retail",
    fills_out: Annotated[str | None, typer.Option(help="write the fills here (.parquet or .csv)")] = None,
    equity_out: Annotated[str | None, typer.Option(help="write the equity curve here (.parquet or .csv)")] = None,
) -> None:
    """Backtest a strategy; with --bars on any file, otherwise on the warehouse through the flow."""
    from strategies import get_strategy

    params = _params(param)
    if bars is None:
        prefect_environment(load_settings())
        from flows.backtest import backtest as backtest_flow

        summary = backtest_flow(strategy=strategy, params=params, symbols=symbol, start=start.date(), end=end.date(),
                                cash=cash, costs=costs)
        _print_metrics(summary, f"backtest {strategy}")
        return
    from uuid import uuid4

    from tapeflow.sim.backtest import run_backtest
    from tapeflow.sim.costs import cost_preset
    from tapeflow.sim.engine import BacktestConfig
    from tapeflow.sim.report import render_report

    try:
        chosen = get_strategy(strategy)(**params)
        history = _history_from(bars, chosen.timeframe, symbol, start, end, watchlist=False)
        run = run_backtest(chosen, history, BacktestConfig(cash=cash, costs=cost_preset(costs)), universe=bars)
    except (ValueError, OSError, LookupError) as exc:  # LookupError: no sentiment model for a news strategy
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    for path, frame in ((fills_out, run.result.fills), (equity_out, run.result.equity)):
        if path:
            frame.write_parquet(path) if path.endswith(".parquet") else frame.write_csv(path)
    run_id = f"file-{uuid4().hex[:12]}"
    report = render_report(run.result, run_id=run_id, title=f"{chosen!r} on {bars}", metrics=run.metrics,
                           assumptions=run.assumptions, out_dir=load_settings().home.resolve() / "reports")
    _print_metrics(run.metrics, f"{chosen!r}")
    out.print(f"fills: {run.result.fills.height}, final equity: {run.result.final_equity:,.2f}; report: {report}", soft_wrap=True)


@app.command("check-lookahead")
def check_lookahead_command(
    strategy: Annotated[str, typer.Argument(help="a built-in strategy name")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value, repeatable")] = None,
    bars: Annotated[str | None, typer.Option(help="Parquet/CSV bars file instead of the warehouse")] = None,
    symbol: Annotated[list[str] | None, typer.Option("--symbol", "-s")] = None,
    start: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"])] = datetime(2009, 8, 21),
    end: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"])] = datetime(2010, 8, 20),
    cuts: Annotated[int, typer.Option(help="random cut points to test")] = 20,
    seed: int = 0,
) -> None:
    """Rerun a strategy on histories cut at random points; exit 1 if any decision changes."""
    from strategies import get_strategy
    from tapeflow.sim.lookahead import check_lookahead

    try:
        chosen = get_strategy(strategy)(**_params(param))
        history = _history_from(bars, chosen.timeframe, symbol, start, end, watchlist=chosen.uses_watchlist,
                                news=chosen.uses_news)
    except (ValueError, OSError, LookupError) as exc:  # LookupError: no sentiment model for a news strategy
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    report = check_lookahead(chosen, history, n=cuts, seed=seed)
    (out if report.passed else err).print(report.summary(), soft_wrap=True)
    raise typer.Exit(0 if report.passed else 1)


@app.command()
def report(
    run_id: Annotated[str, typer.Argument(help="a backtest_runs.run_id")],
    open_it: Annotated[bool, typer.Option("--open", help="open it in the browser")] = False,
) -> None:
    """Print (or open) a backtest's HTML report, writing it again from the warehouse if it is gone."""
    from pathlib import Path

    from tapeflow.sim.report import render_report
    from tapeflow.sim.runs import load_run
    from warehouse import WarehouseMissing, open_warehouse

    settings = load_settings()
    try:
        run, backtest = load_run(open_warehouse(settings), run_id)
    except (LookupError, WarehouseMissing) as exc:
        err.print(f"[red]{exc}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    path = Path(run["report_path"]) if run["report_path"] else None
    if path is None or not path.exists():
        path = render_report(backtest.result, run_id=run_id, title=f"{backtest.strategy} {backtest.params}",
                             metrics=backtest.metrics, assumptions=backtest.assumptions,
                             out_dir=settings.home.resolve() / "reports")
    out.print(str(path), soft_wrap=True)
    if open_it:
        import webbrowser

        webbrowser.open(path.as_uri())


@app.command()
def clock(
    at: Annotated[datetime | None, typer.Option(help="an instant, ISO-8601 with offset; default now")] = None,
) -> None:
    """Show the market phase at an instant and the next regular open (XNYS)."""
    from tapeflow.calendar import NEW_YORK, get_calendar

    t = require_offset(at, "--at", "2026-11-27T12:00:00-05:00") or datetime.now(timezone.utc)
    calendar = get_calendar()
    nxt = calendar.next_open(t)
    out.print(f"{t.astimezone(NEW_YORK):%Y-%m-%d %H:%M %Z}: {calendar.phase_at(t).value}")
    out.print(f"next regular open: {nxt.astimezone(NEW_YORK):%a %Y-%m-%d %H:%M %Z} ({nxt:%H:%M} UTC)")


@app.command()
def demo() -> None:
    """Ingest the bundled real data through the flow, then query the warehouse."""
    from warehouse import open_warehouse
    from warehouse.examples import DEMO_EXAMPLES
    from warehouse.query import run_read_only

    settings = load_settings()
    prefect_environment(settings)
    from flows.demo import demo as demo_flow

    out.rule("tapeflow demo")
    out.print("Ingesting the bundled real data (data/NOTICE) through the [bold]ingest-bars[/bold] flow "
              "on Prefect's local API ...")
    counts = demo_flow()
    columns = ("fetched", "inserted", "updated", "unchanged", "quarantined", "stored")
    ingests = {name: c for name, c in counts.items()
               if name not in ("backtest", "walk_forward", "session", "sentiment_model")}
    print_frame(pl.DataFrame([{"batch": name, **{k: c[k] for k in columns}} for name, c in ingests.items()]),
                title="rows fetched, stored (new + changed), unchanged, quarantined")
    result = counts["backtest"]
    headline = ("total_return", "annual_return", "sharpe", "sortino", "max_drawdown", "trades", "win_rate",
                "profit_factor", "exposure", "commissions", "slippage", "final_equity")
    _print_metrics({k: result.get(k) for k in headline},
                   "backtest: watchlist_momentum on the scanner's pre-market lists, 2009-09-21..2010-08-20 (retail costs)")
    out.print(f"report: {result['report']}", soft_wrap=True)
    folds = counts["walk_forward"]
    _print_metrics({k: folds.get(f"oos_{k}") for k in headline},
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
News:       tapeflow news catalysts; tapeflow news ingest --source replay --start 2010-08-16T00:00:00Z
            tapeflow nlp train (the full sentiment model, ~14 min on 2 cores); tapeflow nlp eval; tapeflow nlp models
Backtest:   tapeflow backtest sma_cross -p fast=10 -p slow=30 --costs retail
            tapeflow check-lookahead watchlist_momentum
            tapeflow report RUN_ID --open     (run ids: tapeflow sql "SELECT run_id, strategy, metrics->>'sharpe' FROM backtest_runs")
Clock:      tapeflow clock
Broker:     tapeflow broker status     (the simulated paper broker by default; see README, Brokers)
Trade:      tapeflow promote opening_range --to paper; tapeflow trade opening_range --replay-day 2011-03-08
            tapeflow kill-switch on --reason "..."; tapeflow monitor; tapeflow sessions
UI:         make serve   (Prefect UI on http://127.0.0.1:4200 with the deployments of prefect.yaml)
Run again:  make demo    (idempotent: a second run stores nothing new)""", soft_wrap=True)


def _print_catalysts(warehouse, trained: dict[str, object]) -> None:
    """The bundled headlines as a strategy sees them: tickers, catalyst class, sentiment."""
    from tapeflow.news_cli import recent_catalysts

    out.print("\n[bold]Catalysts[/bold] in the sample headlines (written for the demo, data/NOTICE)")
    if trained:
        out.print(f"No sentiment model was recorded, so the demo tuned a quick one ({trained['train_rows']} sentences, "
                  f"one epoch, {trained['train_seconds']} s): held-out macro-F1 {trained['macro_f1']:.3f} on "
                  f"{trained['held_out_rows']} sentences. `tapeflow nlp train` trains the full model.", soft_wrap=True)
    else:
        out.print(_model_line(warehouse), soft_wrap=True)
    frame = recent_catalysts(warehouse, since=datetime(2010, 8, 1, tzinfo=timezone.utc), limit=20)
    frame = frame.with_columns(pl.col("published").str.slice(5).alias("2010, NY"))  # the year is the same for all
    frame = frame.select("2010, NY", *(c for c in frame.columns if c not in ("published", "2010, NY")))
    # One line a headline, cut to the terminal: the headline is the column that gives way.
    widths = {c: max([len(c), *(len(_cell(v)) for v in frame[c])]) for c in frame.columns if c != "headline"}
    room = max(20, out.width - sum(widths.values()) - 3 * len(frame.columns) - 1)
    frame = frame.with_columns(pl.when(pl.col("headline").str.len_chars() > room)
                               .then(pl.col("headline").str.slice(0, room - 1) + "…").otherwise(pl.col("headline")))
    table = Table()
    for name in frame.columns:
        table.add_column(name, no_wrap=True)
    for row in frame.iter_rows():
        table.add_row(*(_cell(v) for v in row))
    out.print(table)


def _model_line(warehouse) -> str:
    """The sentiment model in use and its held-out figures, when it has them."""
    from tapeflow.news.model_registry import current_model

    version, _ = current_model(load_settings(), warehouse)
    with warehouse.read() as con:
        accuracy, macro_f1 = con.execute("SELECT accuracy, macro_f1 FROM sentiment_models WHERE version = ?",
                                         [version]).fetchone() or (None, None)
    if accuracy is None:
        return f"sentiment model {version} (not evaluated: tapeflow nlp eval --model {version})"
    return f"sentiment model {version}: held-out accuracy {accuracy:.3f}, macro-F1 {macro_f1:.3f}"


def _print_session(session: dict[str, object]) -> None:
    """A replayed paper session: its orders and fills, P&L and alerts."""
    from warehouse import Warehouse
    from warehouse.query import run_read_only

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
    _print_metrics({k: session.get(k) for k in ("cycles", "decisions", "orders_sent", "fills", "realized_pnl",
                                                 "equity_start", "equity_end", "reconciled")}, "the day")
    alerts = session.get("alerts") or []
    out.print("alerts: " + ("; ".join(map(str, alerts)) if alerts else "none"), soft_wrap=True)
    out.print(f"its rows: {session['warehouse']}", soft_wrap=True)


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="Prefect server port on 127.0.0.1")] = 4200,
) -> None:
    """Prefect server and UI, work pool, deployments from prefect.yaml and a worker; Ctrl-C stops all."""
    from tapeflow.serve import serve_stack

    settings = load_settings()
    prefect_environment(settings)
    raise typer.Exit(serve_stack(settings, port=port, console=out))


def _register_subcommands() -> None:
    from tapeflow.broker_cli import broker_app
    from tapeflow.monitor_cli import alerts_command, monitor_command
    from tapeflow.news_cli import register as register_news
    from tapeflow.promotion_cli import register as register_promotion
    from tapeflow.session_cli import register as register_session

    app.add_typer(broker_app, name="broker")
    app.command("monitor")(monitor_command)
    app.command("alerts")(alerts_command)
    register_promotion(app)  # promote, promotions, paper-gap
    register_session(app)  # trade, sessions, kill-switch
    register_news(app)  # news ingest|catalysts, nlp train|eval|score|models


_register_subcommands()


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
