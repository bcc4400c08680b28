"""A trading day as a person reads it: the progress line, the book as table rows and the
day's reconciliation in markdown, built from what the session's observer is told."""

from __future__ import annotations

from pathlib import Path

from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.live.observer import SessionView
from tapeflow.live.report import SessionReport


def progress_words(view: SessionView) -> str:
    """Where the day stands, in one line: time, cycle, equity, P&L, positions, working orders."""
    return (f"{view.time.astimezone(NEW_YORK):%H:%M} New York, cycle {view.cycle} of {view.cycles}: equity "
            f"{view.equity:,.2f}, realized P&L {view.realized_pnl:,.2f}, {len(view.positions)} positions, "
            f"{len(view.working)} working orders")


def book_rows(view: SessionView) -> list[dict[str, object]]:
    """The book as one table: the account's figures, each position, each working order."""
    def row(item: str, symbol: str = "", qty: float | None = None, price: float | None = None,
            last: float | None = None, pnl: float | None = None, note: str = "") -> dict[str, object]:
        return {"item": item, "symbol": symbol, "qty": qty, "price": price, "last": last, "pnl": pnl, "note": note}

    rows = [row("equity", pnl=round(view.equity, 2)), row("cash", pnl=round(view.cash, 2)),
            row("realized P&L", pnl=round(view.realized_pnl, 2)), row("unrealized P&L", pnl=round(view.unrealized_pnl, 2))]
    rows += [row("position", h.symbol, h.qty, round(h.avg_price, 4), h.last, round(h.unrealized_pnl, 2), "avg price")
             for h in view.positions]
    rows += [row("working order", w.symbol, w.qty - w.filled_qty, w.limit_price or w.stop_price, None, None,
                 f"{w.side.value} {w.order_type.value} {w.client_order_id}") for w in view.working]
    return rows


def day_markdown(report: SessionReport, where: Path | None, view: SessionView | None = None) -> str:
    """The day's reconciliation: the figures `tapeflow sessions` lists, the rest of the summary,
    the closing book, alerts and what a restart recovered."""
    lines = [f"# {report.session_id}", "", "| | |", "|---|---|"]
    for name in ("status", "reconciled", "orders_sent", "fills", "realized_pnl", "cycles", "decisions", "rejected",
                 "equity_start", "equity_end"):
        value = getattr(report, name)
        lines.append(f"| {name} | {value:,.2f} |" if isinstance(value, float) else f"| {name} | {value} |")
    if where is not None:
        lines += ["", f"Rows in `{where}`; `tapeflow sessions` lists this session."]
    if view is not None:
        lines += ["", "## At the close", ""]
        held = [f"- {h.qty:g} {h.symbol} at {h.avg_price:,.4f}, last {h.last}, unrealized {h.unrealized_pnl:,.2f}"
                for h in view.positions]
        working = [f"- working: {w.side.value} {w.qty - w.filled_qty:g} {w.symbol} {w.order_type.value} "
                   f"({w.client_order_id})" for w in view.working]
        lines += held + working or ["- flat, no working orders"]
    lines += ["", "## Alerts", ""] + [f"- {a}" for a in report.alerts or ["none"]]
    if report.recovery:
        lines += ["", "## Recovery after a restart", ""] + [f"- {note}" for note in report.recovery]
    return "\n".join(lines)
