"""How a `tapeflow` command prints a result: the output formats, a frame as a table, CSV or JSON,
and metrics as a table; kept light (polars and rich), so that `tapeflow sql` starts on it alone."""

from __future__ import annotations

import sys
from datetime import datetime
from enum import StrEnum

import polars as pl
from rich.table import Table

from tapeflow.cli.console import out


class OutputFormat(StrEnum):
    """How a command prints a result (--format)."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"


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
        # fold, never cut: an id or a path that does not fit goes on over the next lines, whole
        table.add_column(name, justify="right" if dtype.is_numeric() else "left", overflow="fold")
    for row in frame.head(max_rows).iter_rows():
        table.add_row(*(cell(v) for v in row))
    out.print(table)
    shown = min(frame.height, max_rows)
    out.print(f"[dim]{frame.height} row{'s' if frame.height != 1 else ''}"
              + (f", first {shown} shown" if shown < frame.height else "") + "[/dim]")

def cell(value: object) -> str:
    """One value as a table shows it: NULL, numbers without trailing zeros, instants with a space."""
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".") if abs(value) < 1e15 else f"{value:.6g}"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)

def print_metrics(metrics: dict[str, object], title: str) -> None:
    """Metrics as a two-column table: name and value."""
    print_frame(pl.DataFrame({"metric": list(metrics), "value": [cell(v) for v in metrics.values()]}), title=title, max_rows=60)
