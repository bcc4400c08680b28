"""`tapeflow archive ...`: move old months of bars out of the warehouse table into the Parquet
archive, and list what the archive holds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import polars as pl
import typer

from tapeflow.cli.console import EXIT_BUSY, err, out, refuse
from tapeflow.cli.output import OutputFormat, check_option, print_frame, require_warehouse
from tapeflow.config import load_settings
from tapeflow.model import Timeframe
from warehouse import WarehouseBusy, open_warehouse
from warehouse.archive import archive_bars, archive_status

archive_app = typer.Typer(no_args_is_help=True, help="The Parquet bar archive: move old months out of the "
                                                     "warehouse table; list what it holds.")

_MONTH_FORMS = ("%Y-%m", "%Y-%m-%d")


@archive_app.command("bars")
def bars_command(
    timeframe: Annotated[Timeframe, typer.Option(help="1m or 1d")],
    before: Annotated[str, typer.Option(help="the first month that stays in the table (YYYY-MM or YYYY-MM-01); "
                                             "every month before it moves")],
) -> None:
    """Move the bars of every month before --before into the archive, a month a transaction."""
    month = cutoff_month(before)
    settings = load_settings()
    require_warehouse(settings)
    warehouse = open_warehouse(settings, on_busy=lambda msg: err.print(msg, style="yellow", markup=False))
    try:
        moved = archive_bars(warehouse, timeframe, month)
    except WarehouseBusy as exc:
        err.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(EXIT_BUSY) from None
    if not moved:
        out.print(f"no {timeframe} bars before {month} in the warehouse table: nothing to move", highlight=False)
        return
    frame = pl.DataFrame([{"timeframe": m.timeframe.value, "month": m.month, "moved": m.moved, "rows": m.rows,
                           "bytes": m.bytes} for m in moved])
    print_frame(frame, title=f"archived {timeframe} bars before {month} into {settings.archive_path}")


@archive_app.command("status")
def status_command(
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="table, csv or json")] = OutputFormat.TABLE,
) -> None:
    """Every archived month: its timeframe, rows and bytes on disk."""
    root = load_settings().archive_path
    held = archive_status(root)
    if not held and fmt is OutputFormat.TABLE:
        out.print(f"the archive at {root} holds no bars yet: `tapeflow archive bars --timeframe 1m --before YYYY-MM` "
                  "moves old months there", soft_wrap=True, highlight=False)
        return
    frame = pl.DataFrame([{"timeframe": m.timeframe, "month": m.month, "rows": m.rows, "bytes": m.bytes} for m in held],
                         schema={"timeframe": pl.String, "month": pl.String, "rows": pl.Int64, "bytes": pl.Int64})
    print_frame(frame, fmt, title=f"the bar archive at {root}", max_rows=10_000)


def cutoff_month(before: str) -> str:
    """--before as 'YYYY-MM': a month, or its first day, no later than this month; else exit 2."""
    parsed = None
    for form in _MONTH_FORMS:
        try:
            parsed = datetime.strptime(before, form)
            break
        except ValueError:
            continue
    if parsed is None or parsed.day != 1:
        refuse(f"--before must be a month (YYYY-MM) or its first day (whole months move), got {before}: "
               "e.g. --before 2011-03-01")
    month = parsed.strftime("%Y-%m")
    this_month = datetime.now(UTC).strftime("%Y-%m")
    check_option("--before", month <= this_month, f"this month ({this_month}) or earlier: later months are still "
                 "being written", before, f"--before {this_month}-01")
    return month
