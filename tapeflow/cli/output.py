"""What every `tapeflow` command shares: the consoles and exit codes (`tapeflow.cli.console`),
output formats and tables (`tapeflow.cli.tables`), Prefect's environment, and how command-line
values are read and checked."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, TypeVar

import typer

from tapeflow.cli.console import check_option, refuse
from tapeflow.cli.tables import OutputFormat, cell, print_frame, print_metrics
from tapeflow.config import Settings, prefect_defaults
from tapeflow.model import Timeframe
from tapeflow.news.model_registry import has_model
from tapeflow.sources.http import VendorError
from tapeflow.sources.replay import BUNDLED_DAYS
from tapeflow.strategy.base import Strategy
from tapeflow.strategy.registry import get_strategy
from warehouse import WarehouseMissing, open_warehouse

__all__ = ["WINDOW_END_HELP", "WINDOW_HELP", "BarsOpt", "EndOpt", "ParamOpt", "StartOpt", "StrategyArg", "SymbolOpt",
           "OutputFormat", "cell", "check_option", "check_window", "chosen_strategy",
           "configured", "parse_params", "prefect_environment", "print_frame", "print_metrics", "require_offset",
           "require_sentiment_model", "require_warehouse", "strategy_window"]

T = TypeVar("T")


def prefect_environment(settings: Settings) -> None:
    """Apply tapeflow's Prefect defaults unless the user chose otherwise; must run before
    prefect is imported."""
    for name, value in {**prefect_defaults(settings), "PREFECT_LOGGING_LEVEL": "WARNING"}.items():
        os.environ.setdefault(name, value)
    os.makedirs(os.environ["PREFECT_HOME"], exist_ok=True)

def require_offset(value: datetime | None, option: str, example: str) -> datetime | None:
    """An aware instant from the command line, or exit 2 saying the option needs an offset."""
    if value is not None and value.tzinfo is None:
        refuse(f"{option} needs a UTC offset, e.g. {option} {example}")
    return value

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
        refuse(str(exc))


def configured(option: str | None, make: Callable[[], T]) -> T:
    """`make()` (a vendor source, a broker), or exit 2 in one line when its settings are wrong: an
    unknown name, a key not set (the line starts with `option` when given). Called before Prefect
    starts, so a flow never fails on it."""
    try:
        return make()
    except (VendorError, ValueError) as exc:
        refuse(f"{option}: {exc}" if option else str(exc))


def require_warehouse(settings: Settings) -> None:
    """Exit 2 in one line when there is no warehouse to read yet: before Prefect starts for nothing."""
    if not settings.warehouse_path.exists():
        refuse(f"no warehouse at {settings.warehouse_path}: run `tapeflow demo` (or an ingest) first, or set "
               "TAPEFLOW_HOME to the folder that holds tapeflow.duckdb")

WINDOW_HELP = "first New York day; default: the bundled data's first (2009-08-21 daily, 2011-01-03 minute)"
WINDOW_END_HELP = "last New York day; default: the bundled data's last (2010-08-20 daily, 2011-03-31 minute)"
# The arguments every strategy command shares.
StrategyArg = Annotated[str, typer.Argument(help="a strategy name (tapeflow strategies lists them)")]
ParamOpt = Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value, repeatable")]
BarsOpt = Annotated[str | None, typer.Option(help="Parquet/CSV bars file instead of the warehouse")]
SymbolOpt = Annotated[list[str] | None, typer.Option("--symbol", "-s", help="repeat for several; default all")]
StartOpt = Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help=WINDOW_HELP)]
EndOpt = Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help=WINDOW_END_HELP)]


def strategy_window(timeframe: Timeframe, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """--start/--end as given, the bundled data's days for the strategy's timeframe where not,
    refused in one line when start is after end."""
    first, last = BUNDLED_DAYS[Timeframe(timeframe)]
    start = start or datetime.combine(first, datetime.min.time())
    end = end or datetime.combine(last, datetime.min.time())
    check_window(start, end)
    return start, end


def check_window(start: datetime, end: datetime) -> None:
    """Exit 2 in one line when --start is after --end."""
    check_option("--start", start <= end, f"on or before --end ({end:%Y-%m-%d})", start.strftime("%Y-%m-%d"),
                 f"--start {end:%Y-%m-%d}")


def require_sentiment_model(settings: Settings, strategy: type[Strategy] | Strategy) -> None:
    """Exit 2 in one line when `strategy` trades on scored headlines and no sentiment model is current."""
    if not strategy.uses_news:
        return
    try:
        scored = has_model(settings, open_warehouse(settings))
    except WarehouseMissing:
        scored = False
    if not scored:
        refuse(f"{strategy.name} trades on scored headlines and no sentiment model is current: train one first "
               "(tapeflow nlp train), or choose one (tapeflow nlp models; tapeflow nlp use VERSION)")
