"""`tapeflow actions ...`: corporate actions in, what they are, and the price jumps none explains."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import polars as pl
import typer

from tapeflow.cli.flow_runs import running_flows
from tapeflow.cli.output import OutputFormat, check_option, configured, print_frame
from tapeflow.config import load_settings
from tapeflow.venues.configured import ACTION_SOURCES, action_source
from warehouse import open_warehouse

actions_app = typer.Typer(no_args_is_help=True, help="Corporate actions: ingest them, list them, see unexplained price jumps.")


@actions_app.command("ingest")
def ingest_command(
    source: Annotated[str, typer.Option(help=f"{', '.join(ACTION_SOURCES)}")] = "replay",
    start: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="first ex-date")] = datetime(2009, 8, 21),
    end: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="last ex-date")] = datetime(2010, 8, 20),
    symbol: Annotated[list[str] | None, typer.Option("--symbol", "-s", help="repeat for several; default all")] = None,
) -> None:
    """Run the ingest-actions flow once (then the price-jump check) and print its counts."""
    check_option("--source", source in ACTION_SOURCES, f"one of {', '.join(ACTION_SOURCES)}", source, "--source replay")
    check_option("--end", end >= start, "on or after --start", end.date(), f"--end {start.date()}")
    configured(None, lambda: action_source(source, load_settings()))  # a missing key: one line, before Prefect
    with running_flows(load_settings()):
        from flows.actions import ingest_actions  # deferred: Prefect takes seconds to import and reads its settings then

        counts = ingest_actions(source=source, symbols=[s.upper() for s in symbol] if symbol else None,
                                start=start.date(), end=end.date())
    print_frame(pl.DataFrame([counts]), title=f"ingest-actions {source}")


@actions_app.command("list")
def list_command(
    symbol: Annotated[str | None, typer.Option("--symbol", "-s", help="only this ticker")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="table, csv or json")] = OutputFormat.TABLE,
) -> None:
    """The recorded corporate actions, by ex-date."""
    frame = _rows("SELECT symbol, kind, ex_date, ratio, amount, price_factor, new_symbol, knowable_at, source "
                  "FROM corporate_actions", symbol, "ex_date, symbol")
    print_frame(frame, fmt, title="corporate actions", max_rows=200)


@actions_app.command("findings")
def findings_command(
    symbol: Annotated[str | None, typer.Option("--symbol", "-s", help="only this ticker")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="table, csv or json")] = OutputFormat.TABLE,
) -> None:
    """Price jumps no recorded corporate action explains (the bars stay as the source sent them)."""
    frame = _rows("SELECT symbol, timeframe, ts, round(ratio, 4) AS ratio, detail FROM data_findings", symbol, "ts, symbol")
    print_frame(frame, fmt, title="price jumps no recorded corporate action explains", max_rows=200)


def _rows(select: str, symbol: str | None, order: str) -> pl.DataFrame:
    with open_warehouse(load_settings()).read() as con:
        return con.sql(f"{select} WHERE $symbol IS NULL OR symbol = $symbol ORDER BY {order}",
                       params={"symbol": symbol.upper() if symbol else None}).pl()
