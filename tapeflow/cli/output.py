"""What every `tapeflow` command shares: the consoles and exit codes (`tapeflow.cli.console`),
output formats, Prefect's environment, and how tables, metrics and command-line values are
read and printed."""

from __future__ import annotations

import math
import os
import sys
from datetime import datetime
from enum import StrEnum

import polars as pl
import typer
from rich.table import Table

from tapeflow.cli.console import EXIT_REFUSED, err, out
from tapeflow.config import Settings, prefect_defaults
from tapeflow.strategy.base import Strategy
from tapeflow.strategy.registry import get_strategy


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

def check_option(option: str, ok: bool, rule: str, got: object, example: str) -> None:
    """Exit 2 in one line when an option's value breaks its rule: checked before anything starts."""
    if not ok:
        err.print(f"{option} must be {rule}, got {got}: e.g. {example}", style="red", markup=False, highlight=False)
        raise typer.Exit(EXIT_REFUSED)

def parse_params(pairs: list[str] | None) -> dict[str, float]:
    """--param fast=10 --param slow=30 as a dict (the strategy checks types and ranges)."""
    params: dict[str, float] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"--param takes name=value, got {pair!r}")
        try:
            number = float(value)
        except ValueError:
            raise typer.BadParameter(f"--param {name.strip()} takes a number, got {value!r}") from None
        if not math.isfinite(number):  # no range holds nan or inf, and int(inf) would not say so
            raise typer.BadParameter(f"--param {name.strip()} takes a finite number, got {value!r}")
        params[name.strip()] = number
    return params

def chosen_strategy(name: str, params: dict[str, float]) -> Strategy:
    """The strategy `name` with `params`, or exit 2 naming what is wrong (and the known names)."""
    try:
        return get_strategy(name)(**params)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]", soft_wrap=True)
        raise typer.Exit(EXIT_REFUSED) from None
