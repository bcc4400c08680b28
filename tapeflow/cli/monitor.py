"""`tapeflow monitor` (the checks, once, now) and `tapeflow alerts` (what was raised lately)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import polars as pl
import typer

from tapeflow.brokers.live_gate import LiveNotConfirmed
from tapeflow.cli.console import EXIT_BUSY, EXIT_REFUSED, err, out
from tapeflow.cli.output import OutputFormat, print_frame
from tapeflow.config import load_settings
from tapeflow.ops.alert_book import book_from_settings
from tapeflow.ops.monitor import collect, raise_findings
from warehouse import WarehouseBusy, WarehouseMissing, open_warehouse

EXIT_CRITICAL = 1


def monitor_command(
    broker: Annotated[bool, typer.Option("--broker/--no-broker", help="also check the configured broker")] = True,
    send: Annotated[bool, typer.Option("--alert", help="raise the findings as alerts (recorded, deduplicated)")] = False,
) -> None:
    """Run every monitoring check once now and print the findings; exit 1 if any is critical."""

    settings = load_settings()
    warehouse = open_warehouse(settings, on_busy=lambda msg: err.print(f"[yellow]{msg}[/yellow]"))
    now = datetime.now(UTC)
    try:
        findings = collect(settings, warehouse, now, broker=broker)
    except WarehouseBusy as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_BUSY) from None
    except (LiveNotConfirmed, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_REFUSED) from None
    if not findings:
        out.print("all clear")
    else:
        print_frame(pl.DataFrame([{"severity": f.severity, "kind": f.kind, "component": f.alert.component,
                                   "message": f.alert.message, "key": f.key} for f in findings]),
                    title=f"{len(findings)} finding(s) at {now.isoformat(timespec='seconds')}")
    if send and findings:
        counts = raise_findings(book_from_settings(settings, warehouse), findings)
        out.print(f"alerts: {counts.delivered} delivered, {counts.suppressed} suppressed, {counts.failed} failed")
    if any(f.severity == "critical" for f in findings):
        raise typer.Exit(EXIT_CRITICAL)


def alerts_command(
    limit: Annotated[int, typer.Option(min=1, help="how many of the latest alerts")] = 20,
    kind: Annotated[str | None, typer.Option(help="only this kind, e.g. stale_data")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
) -> None:
    """The latest recorded alerts, newest first, with what became of their delivery."""

    try:
        output = OutputFormat(fmt)
    except ValueError:
        raise typer.BadParameter(f"--format must be table, csv or json, got {fmt!r}") from None

    settings = load_settings()
    sql = "SELECT ts, kind, severity, component, title, message, delivered FROM alerts"
    params: list[object] = []
    if kind:
        sql += " WHERE kind = ?"
        params.append(kind)
    sql += " ORDER BY ts DESC, alert_key LIMIT ?"
    params.append(limit)
    try:
        with open_warehouse(settings).read() as con:
            cursor = con.execute(sql, params)
            columns = [d[0] for d in cursor.description]
            frame = pl.DataFrame(cursor.fetchall(), schema=columns, orient="row")
    except WarehouseBusy as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_BUSY) from None
    except WarehouseMissing as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    print_frame(frame, output, title="alerts", max_rows=limit)
