"""How the trading commands print their records within an 80-column terminal: ids and paths
whole on lines of their own, a session or promotion as a short paragraph, a paper gap as
narrow tables whose cells wrap and never end in an ellipsis."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime

import polars as pl
from rich.table import Table
from rich.text import Text

from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.cli.console import out
from tapeflow.cli.output import cell, print_metrics
from tapeflow.live.paper_gap import GapReport
from tapeflow.live.recorded import REPLAY
from tapeflow.model import Outcome

UNFILLED = {Outcome.DECIDED.value, Outcome.SENT.value, Outcome.PLACED.value, Outcome.NEVER_FILLED.value}


def line(text: str) -> None:
    """One line as it is: no markup, no colouring, never wrapped or cut by rich (the terminal
    folds it if it must), so an id or a path can be copied whole."""
    out.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)


def words(text: str, indent: int = 0) -> None:
    """Prose wrapped between words at the terminal's width, every line indented by `indent`."""
    for part in Text(text).wrap(out, out.width - indent):
        line(" " * indent + part.plain.rstrip())


def ny_time(instant: datetime | None, day: date) -> str:
    """New York wall time: `HH:MM` on `day`, `MM-DD HH:MM` on another day."""
    if instant is None:
        return ""
    local = instant.astimezone(NEW_YORK)
    return f"{local:%H:%M}" if local.date() == day else f"{local:%m-%d %H:%M}"


def narrow_table(title: str, columns: list[tuple[str, str]]) -> Table:
    """A table whose cells wrap between words, and fold rather than end in an ellipsis (cells
    go in as Text: a symbol or an outcome is never read as markup)."""
    table = Table(title=title, title_justify="left", title_style="bold")
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold")
    return table


# -- tapeflow trade --------------------------------------------------------------------------


def print_session_result(strategy: str, result: Mapping[str, object]) -> None:
    """What `tapeflow trade` ran: the day's figures, then its session id and file on lines of their own."""
    shown = {k: v for k, v in result.items() if k not in ("session_id", "warehouse")}
    print_metrics(shown, f"trade-session {strategy}")
    sid = str(result.get("session_id", ""))
    line(f"session: {sid}")
    if "warehouse" in result:
        line(f"rows in: {result['warehouse']}")
    if ":paper:" in sid:
        line(f"against its backtest: tapeflow paper-gap {sid}")


# -- tapeflow sessions -----------------------------------------------------------------------


def print_sessions(frame: pl.DataFrame, limit: int, *, complete: bool = True) -> None:
    """Each session as a short paragraph: its id, what it did, and the replay file it ran in
    (`complete`: every file was read, so an empty listing means none was recorded)."""
    if frame.is_empty():
        words("no trading sessions recorded yet: `tapeflow trade STRATEGY --replay-day DAY` replays a stored day"
              if complete else "no trading sessions in the files that could be read")
        return
    out.print("[bold]trading sessions[/bold], newest first (times New York)")
    for row in frame.iter_rows(named=True):
        day = row["started_at"].astimezone(NEW_YORK).date()
        began = ny_time(row["started_at"], day)
        ran = f"{began}-{ny_time(row['finished_at'], day)}" if row["finished_at"] else f"since {began}"
        checked = "reconciled" if row["reconciled"] else "not reconciled"
        counts = (f"; {row['orders']} orders, {row['fills']} fills, realized P&L {cell(row['realized_pnl'])}"
                  if row["orders"] is not None else "")
        line(row["session_id"])
        words(f"{row['where']}: {row['status']}, {checked}{counts}; {ran}", 2)
        if row["where"] == REPLAY:
            line(f"  {row['path']}")
    more = f", the newest {limit} (--limit for more)" if frame.height == limit else ""
    out.print(f"[dim]{frame.height} session{'s' if frame.height != 1 else ''}{more}[/dim]")


# -- tapeflow promotions ---------------------------------------------------------------------


def print_promotions(frame: pl.DataFrame) -> None:
    """Each promotion as a short paragraph: strategy, stage and parameters, when, on how many sessions."""
    if frame.is_empty():
        words("no promotions yet: `tapeflow promote STRATEGY --to paper` records one")
        return
    out.print("[bold]promotions[/bold] (reconciled paper sessions of the parameter set: then, now)")
    for row in frame.iter_rows(named=True):
        params = ", ".join(f"{k}={v}" for k, v in json.loads(row["params"]).items())
        words(f"{row['strategy']} to {row['stage']}, params {row['params_hash']}")
        words(params, 2)
        words(f"promoted {row['promoted_at']:%Y-%m-%d %H:%M UTC} with {row['sessions_at_promotion']} reconciled "
              f"paper sessions; {row['reconciled_paper_sessions']} now", 2)
        if row["override_reason"]:
            words(f"override: {row['override_reason']}", 2)


# -- tapeflow paper-gap ----------------------------------------------------------------------


def print_gap(report: GapReport, where: str) -> None:
    """A paper session against its backtest: per decision, per round trip, then the gap by cause."""
    day = report.session.session_date
    line(f"paper gap of {report.session.session_id}")
    line(f"rows in: {where}")
    decisions = narrow_table("per decision (gap = paper - backtest, times New York)",
                             [("decision", "left"), ("paper", "left"), ("backtest", "left"), ("gap", "right"),
                              ("cause", "left")])
    for d in report.decisions.iter_rows(named=True):
        decisions.add_row(*map(Text, (
            f"{ny_time(d['decided_at'], day)}\n{d['action']} {d['symbol']}",
            _side(d["paper_qty"], d["paper_price"], d["paper_time"], d["outcome"], day),
            _side(d["backtest_qty"], d["backtest_price"], d["backtest_time"], d["backtest_outcome"], day),
            cell(d["gap"]), d["cause"])))
    out.print(decisions)
    trips = narrow_table("per round trip", [("symbol", "left"), ("entered", "left"), ("exited", "left"),
                                            ("paper P&L", "right"), ("backtest P&L", "right"), ("gap", "right"),
                                            ("cause", "left")])
    for t in report.trades.iter_rows(named=True):
        trips.add_row(*map(Text, (t["symbol"], ny_time(t["entered_at"], day), ny_time(t["exited_at"], day),
                                  cell(t["paper_pnl"]), cell(t["backtest_pnl"]), cell(t["gap"]), t["cause"])))
    out.print(trips)
    title = "gap (paper P&L - backtest P&L), by cause"
    summary = narrow_table(title, [("metric", "left"), ("value", "left")])
    summary.min_width = len(title)  # the title on one line, not wrapped to two short columns
    for name, value in report.summary().items():
        if name != "session_id":  # on its own line above
            summary.add_row(name, Text(cell(value)))
    out.print(summary)


def _side(qty: float, price: float | None, at: datetime | None, outcome: str | None, day: date) -> str:
    """One side's fill, `100 @ 10.12` over its time, or what became of the order."""
    if qty > 0 and price is not None:
        return f"{cell(qty)} @ {cell(price)}\n{ny_time(at, day)}"
    return "never filled" if outcome in UNFILLED or not outcome else outcome
