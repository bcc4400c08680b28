"""`tapeflow monitor` (the checks, once, now) and `tapeflow alerts` (what was raised lately)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import polars as pl
import typer
from rich.padding import Padding
from rich.text import Text

from tapeflow.brokers.live_gate import LiveNotConfirmed
from tapeflow.cli.console import EXIT_BUSY, EXIT_REFUSED, err, out
from tapeflow.cli.output import OutputFormat, print_frame
from tapeflow.config import load_settings
from tapeflow.ops.alert_book import SUPPRESSED, book_from_settings
from tapeflow.ops.alerts import Severity
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
    if send:
        counts = raise_findings(book_from_settings(settings, warehouse), findings, now)
        out.print(f"alerts: {counts.delivered} delivered, {counts.suppressed} suppressed, {counts.failed} failed, "
                  f"{counts.summaries} summaries of repeats")
    if any(f.severity == Severity.CRITICAL for f in findings):
        raise typer.Exit(EXIT_CRITICAL)


def alerts_command(
    limit: Annotated[int, typer.Option(min=1, help="how many of the latest alerts")] = 20,
    kind: Annotated[str | None, typer.Option(help="only this kind, e.g. stale_data, flow_failed, repeats")] = None,
    suppressed: Annotated[bool, typer.Option("--suppressed", help="also list each suppressed repeat")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json")] = "table",
) -> None:
    """The latest recorded alerts, newest first, with what became of their delivery and how
    many repeats their dedup window suppressed."""

    try:
        output = OutputFormat(fmt)
    except ValueError:
        raise typer.BadParameter(f"--format must be table, csv or json, got {fmt!r}") from None

    settings = load_settings()
    sql = ("SELECT ts, severity, kind, component, title, message, delivered, repeats, last_repeat_at, summarised_at, "
           "alert_key FROM alerts WHERE true")
    params: list[object] = []
    if kind:
        sql += " AND kind = ?"
        params.append(kind)
    if not suppressed:  # counted on the alert they repeat
        sql += " AND NOT starts_with(delivered, ?)"
        params.append(f"{SUPPRESSED}:")
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
    if output is OutputFormat.TABLE:
        print_alerts(frame)
    else:
        print_frame(frame, output)


_SEVERITY_STYLE = {Severity.CRITICAL: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def print_alerts(frame: pl.DataFrame) -> None:
    """One block per alert, as `git log` prints commits, so it fits 80 columns: text wraps, and
    each key has a line of its own (folded onto the next only past 78 columns, never cut)."""
    out.print(Text("alerts", style="bold"))
    for row in frame.iter_rows(named=True):
        n = row["repeats"] or 0
        heading = Text(f"{row['ts']:%Y-%m-%d %H:%M:%S}  ")
        heading.append(row["severity"], style=_SEVERITY_STYLE.get(row["severity"], ""))
        heading.append(f"  {row['kind']}")
        if n:
            heading.append(f"  +{_repeats(n)}", style="bold")
        body = Text(row["title"], style="bold", overflow="fold")
        if row["message"]:
            body.append("\n" + row["message"])
        body.append(f"\n{row['component']} -> {row['delivered']}")
        if n:
            told = f", summarised {row['summarised_at']:%Y-%m-%d %H:%M:%S}" if row["summarised_at"] else ""
            body.append(f"\n{_repeats(n)} suppressed, the last {row['last_repeat_at']:%Y-%m-%d %H:%M:%S}{told}")
        body.append("\n" + row["alert_key"], style="dim")
        out.print()
        out.print(heading, overflow="fold")
        out.print(Padding(body, (0, 0, 0, 2), expand=False))
    out.print(f"\n[dim]{frame.height} alert{'s' if frame.height != 1 else ''} (UTC)[/dim]")


def _repeats(n: int) -> str:
    return f"{n} repeat{'s' if n != 1 else ''}"
