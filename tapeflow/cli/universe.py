"""`tapeflow universe ...`: load the universe files through the flow, show a universe and its
members on a day; and the check that a named universe is recorded, before anything starts."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from tapeflow.cli.console import EXIT_REFUSED, err, out
from tapeflow.cli.flow_runs import running_flows
from tapeflow.cli.output import print_frame
from tapeflow.config import Settings, load_settings
from tapeflow.sources.universe import Membership, UnknownUniverse, load_membership
from tapeflow.sources.universe_files import RECORDS_FILE, UNIVERSE_DIR
from warehouse import WarehouseMissing, open_warehouse
from warehouse.universes import members_on

universe_app = typer.Typer(no_args_is_help=True, help="Universes: load the bundled one, show one and its members on a day.")


def require_membership(settings: Settings, name: str, option: str = "universe") -> Membership:
    """The recorded universe `name` with its membership, or exit 2 in one line saying what is
    missing and how to load it."""
    try:
        with open_warehouse(settings).read() as con:
            return load_membership(con, name)
    except UnknownUniverse as exc:
        problem = str(exc)
    except WarehouseMissing:
        problem = f"no universe {name!r}: there is no warehouse yet (the bundled one loads with `tapeflow universe load`)"
    err.print(f"{option}: {problem}", style="red", markup=False, highlight=False)
    raise typer.Exit(EXIT_REFUSED)


@universe_app.command("load")
def load_command(
    folder: Annotated[Path | None, typer.Option(help="a folder with universes.csv and one members file a universe; "
                                                     "default the bundled data/universes/")] = None,
) -> None:
    """Run the ingest-universe flow once: records and memberships upserted, bad rows quarantined."""
    settings = load_settings()
    path = folder or settings.data_dir / UNIVERSE_DIR
    if not (path / RECORDS_FILE).is_file():
        err.print(f"--folder: no {RECORDS_FILE} in {path}: give the folder that holds it, e.g. --folder data/universes",
                  style="red", markup=False, highlight=False)
        raise typer.Exit(EXIT_REFUSED)
    with running_flows(settings):
        from flows.universe import ingest_universe  # deferred: Prefect takes seconds to import and reads its settings then

        counts = ingest_universe(folder=str(path))
    print_frame(pl.DataFrame([counts]), title=f"ingest-universe {path}")


@universe_app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(help="a universe name, e.g. sp500-2010")],
    on: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="list the members on this New York day "
                                                                          "(as known at its end)")] = None,
) -> None:
    """A universe's description, survivorship and size, or its members on one day."""
    settings = load_settings()
    held = require_membership(settings, name)
    universe, intervals = held.universe, held.members
    members = None
    if on is not None:
        with open_warehouse(settings).read() as con:
            members = members_on(con, name, on.date())
    out.print(universe.sentence(), soft_wrap=True, highlight=False)
    out.print(f"survivorship: {universe.survivorship.value} ({universe.survivorship.meaning()})", soft_wrap=True,
              highlight=False)
    first = intervals["from_date"].min() if intervals.height else None
    out.print(f"source: {universe.source}; {intervals['symbol'].n_unique()} symbols in {intervals.height} membership "
              f"intervals" + (f", the first from {first}" if first else ""), soft_wrap=True, highlight=False)
    if on is not None and members is not None:
        out.print(f"members on {on:%Y-%m-%d}: {len(members)}", highlight=False)
        if members:
            out.print(" ".join(members), soft_wrap=False, highlight=False)
