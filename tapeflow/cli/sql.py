"""`tapeflow sql`: a read-only query on the warehouse, printed; it starts on this module alone
(no strategies, no engine), so a query answers as soon as DuckDB does."""

from __future__ import annotations

import math
from typing import Annotated

import typer

from tapeflow.cli.console import EXIT_BUSY, EXIT_INTERRUPTED, EXIT_REFUSED, check_option, err
from tapeflow.cli.tables import OutputFormat, print_frame
from tapeflow.config import load_settings
from warehouse import WarehouseBusy, WarehouseMissing, open_warehouse
from warehouse.query import QueryStopped, WriteRefused, run_read_only


def sql_command(
    query: Annotated[str, typer.Argument(help="read-only SQL: SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN")],
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="table, csv or json")] = OutputFormat.TABLE,
    max_rows: Annotated[int, typer.Option(help="rows shown in table format")] = 50,
    time_limit: Annotated[float | None, typer.Option(
        help="seconds before the query is stopped; default TAPEFLOW_SQL_TIME_LIMIT_S (30)")] = None,
) -> None:
    """Query the warehouse read-only and print the result; Ctrl-C or the time limit stops it."""

    settings = load_settings()
    limit = settings.sql_time_limit_s if time_limit is None else time_limit
    check_option("--time-limit", math.isfinite(limit) and limit > 0, "a number of seconds > 0", limit, "--time-limit 60")
    warehouse = open_warehouse(settings, on_busy=lambda msg: err.print(f"[yellow]{msg}[/yellow]"))
    try:
        frame = run_read_only(warehouse, query, time_limit_s=limit)
    except QueryStopped as exc:
        err.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED if "Ctrl-C" in str(exc) else 1) from None
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
