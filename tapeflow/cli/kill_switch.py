"""`tapeflow kill-switch`: stop a strategy's entries within one cycle, from any terminal.

It must answer in well under a second whatever else runs, so this module imports only what
engaging the switch needs (no polars, no Prefect, no strategies); `tapeflow.cli.entry` runs
it without loading the rest of the CLI."""

from __future__ import annotations

from dataclasses import asdict
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from tapeflow.cli.console import EXIT_REFUSED, err, out
from tapeflow.config import load_settings
from tapeflow.risk.state import SwitchSetting, kill_switches, set_kill_switch
from warehouse import open_warehouse


class Switch(StrEnum):
    ON = "on"
    OFF = "off"
    STATUS = "status"


def kill_switch_command(
    state: Annotated[Switch, typer.Argument(help="on, off or status")],
    strategy: Annotated[str, typer.Option(help="one strategy, or all")] = "all",
    reason: Annotated[str, typer.Option(help="why (required to engage)")] = "",
) -> None:
    """Engage or release the kill switch: running sessions cancel their working entries and take
    no new ones within one cycle (exits still go). In the Prefect UI, the variable
    `tapeflow_kill_switch` ("all" or strategy names) does the same."""

    warehouse = open_warehouse(load_settings())
    if state is Switch.STATUS:
        table = Table(title="kill switch", title_justify="left")
        for name in SwitchSetting.__dataclass_fields__:
            table.add_column(name)
        for setting in kill_switches(warehouse):
            table.add_row(*(str(value) for value in asdict(setting).values()))
        out.print(table)
        return
    try:
        engage = state is Switch.ON
        recorded = set_kill_switch(warehouse, strategy, engage, reason if engage else (reason or "released"), by="cli")
    except ValueError as exc:
        err.print(f"[red]{exc}: --reason TEXT[/red]")
        raise typer.Exit(EXIT_REFUSED) from None
    out.print(f"kill switch for {strategy}: {'ENGAGED' if state is Switch.ON else 'released'}")
    if not recorded:  # sessions read the side file every cycle; the warehouse's record follows
        out.print("the warehouse is busy (a long query?): sessions see the switch from its side file now, "
                  "and record it in the warehouse when it is free", soft_wrap=True)
