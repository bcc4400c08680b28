"""The report's tables as HTML fragments: every text escaped, long tables capped with a note
that the rest is in trades.csv."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import datetime

import polars as pl

from tapeflow.backtest.analysis.periods import Drawdown
from tapeflow.backtest.analysis.trades import Durations, Streaks
from tapeflow.backtest.formatting import headline_pairs, held_for, money, when

TRADES_CSV = "trades.csv"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def e(value: object) -> str:
    """`value` as escaped HTML text."""
    return html.escape(str(value), quote=True)


def signed(value: float | None) -> str:
    """The CSS class of a signed figure: pos, neg or none."""
    if value is None or value == 0 or math.isnan(value):
        return ""
    return "pos" if value > 0 else "neg"


def pct1(ret: float | None) -> str:
    """A return as a percentage with one decimal; no '-0.0%'."""
    if ret is None:
        return "—"
    text = f"{ret * 100:.1f}%"
    return "0.0%" if text == "-0.0%" else text


def _more(shown: int, total: int, what: str) -> str:
    if total <= shown:
        return ""
    return (f'<p class="note more">{total - shown:,} more {e(what)} in '
            f'<a href="{TRADES_CSV}">{TRADES_CSV}</a>.</p>')


def _table(head: Sequence[str], rows: list[str], cls: str = "") -> str:
    cells = "".join(f'<th class="l">{e(h)}</th>' if i == 0 else f"<th>{e(h)}</th>" for i, h in enumerate(head))
    return f'<table class="{cls}"><thead><tr>{cells}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def metrics_html(metrics: Mapping[str, object], columns: int = 3) -> str:
    """The headline metrics, `columns` name/value pairs to a row, in the given order."""
    pairs = headline_pairs(metrics)
    if not pairs:
        return '<p class="note">No metrics were given.</p>'
    rows = []
    for i in range(0, len(pairs), columns):
        cells = "".join(f'<td class="k">{e(k)}</td><td class="v">{e(v)}</td>' for k, v in pairs[i:i + columns])
        rows.append(f"<tr>{cells}</tr>")
    return f'<table class="metrics"><tbody>{"".join(rows)}</tbody></table>'


def _heat(ret: float) -> str:
    """A background shade for a monthly return: green up, red down, full at +-10%."""
    if round(ret, 3) == 0:
        return ""
    alpha = round(0.08 + 0.47 * min(abs(ret) / 0.10, 1.0), 2)
    return f"background:rgba({'46,160,67' if ret > 0 else '214,69,65'},{alpha})"


def monthly_html(months: pl.DataFrame, years: pl.DataFrame) -> str:
    """Months as a heat table, one row per year, the year's own return last."""
    if months.height == 0:
        return '<p class="note">No equity marks, so no monthly returns.</p>'
    by_year: dict[int, dict[int, float | None]] = {}
    for row in months.iter_rows(named=True):
        by_year.setdefault(row["year"], {})[row["month"]] = row["ret"]
    yearly = dict(years.select("year", "ret").iter_rows())
    body = []
    for year, values in by_year.items():
        cells = []
        for month in range(1, 13):
            ret = values.get(month)
            style = _heat(ret) if ret is not None else ""
            cells.append(f'<td style="{style}">{pct1(ret)}</td>' if style else f"<td>{pct1(ret) if ret is not None else ''}</td>")
        total = yearly.get(year)
        body.append(f'<tr><th class="l">{year}</th>{"".join(cells)}<td class="{signed(total)}"><b>{pct1(total)}</b></td></tr>')
    head = "".join(f"<th>{m}</th>" for m in _MONTHS)
    return (f'<table class="monthly"><thead><tr><th class="l">Year</th>{head}<th>Year</th></tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>'
            '<p class="note">New York calendar months and years: the last equity mark of each against the one '
            "before (the first against the starting cash); they compound to the total return.</p>")


def per_symbol_html(per_symbol: pl.DataFrame, limit: int) -> str:
    """P&L per symbol, the `limit` largest by |P&L|, net of costs."""
    if per_symbol.height == 0:
        return '<p class="note">No round trips.</p>'
    shown = per_symbol.with_columns(pl.col("pnl").abs().alias("_size")).sort(
        ["_size", "symbol"], descending=[True, False]).head(limit)
    rows = [f'<tr><td class="l">{e(r["symbol"])}</td><td>{r["trades"]:,}</td><td>{r["wins"]:,}</td>'
            f'<td class="{signed(r["pnl"])}">{e(money(r["pnl"]))}</td><td>{e(money(r["costs"]))}</td></tr>'
            for r in shown.iter_rows(named=True)]
    total = float(per_symbol["pnl"].sum())
    rows.append(f'<tr class="total"><td class="l">all {per_symbol.height:,} symbols</td>'
                f'<td>{int(per_symbol["trades"].sum()):,}</td><td>{int(per_symbol["wins"].sum()):,}</td>'
                f'<td class="{signed(total)}">{e(money(total))}</td><td>{e(money(float(per_symbol["costs"].sum())))}</td></tr>')
    return (_table(("Symbol", "Trades", "Wins", "P&L (net)", "Costs"), rows, "compact")
            + _more(min(limit, per_symbol.height), per_symbol.height, "symbols"))


def exits_html(breakdown: pl.DataFrame, still_open: int) -> str:
    """Trades per exit reason; positions open at the end on a line of their own."""
    rows = [f'<tr><td class="l">{e(r["exit_reason"])}</td><td>{r["trades"]:,}</td><td>{r["wins"]:,}</td>'
            f'<td class="{signed(r["pnl"])}">{e(money(r["pnl"]))}</td></tr>' for r in breakdown.iter_rows(named=True)]
    if still_open:
        rows.append(f'<tr class="total"><td class="l">end of data: still open</td><td>{still_open:,} '
                    f'position{"s" if still_open != 1 else ""}</td><td></td><td>marked, not realised</td></tr>')
    if not rows:
        return '<p class="note">No round trips.</p>'
    return _table(("Exit reason", "Trades", "Wins", "P&L (net)"), rows, "compact")


def trade_stats_html(held: Mapping[str, Durations], runs: Streaks) -> str:
    """Holding time of winners and losers, and the longest streaks."""
    rows = [f'<tr><td class="l">{e(name)}</td><td>{d.trades:,} trades</td><td>{e(held_for(d.mean))}</td>'
            f'<td>{e(held_for(d.median))}</td></tr>' for name, d in held.items()]
    table = _table(("Held", "Trades", "Mean", "Median"), rows, "compact")
    return (f"{table}<p class=\"note\">Longest streaks: <b>{runs.wins:,} winning trades</b>, "
            f"<b>{runs.losses:,} losing trades</b> in a row (by exit time).</p>")


def drawdowns_html(episodes: Sequence[Drawdown], limit: int = 5) -> str:
    """The worst drawdowns: peak, valley, recovery, depth and duration in calendar days."""
    if not episodes:
        return '<p class="note">The equity never fell under a previous peak.</p>'
    rows = [f'<tr><td class="l">{d.start.isoformat()}</td><td>{d.valley.isoformat()}</td>'
            f'<td>{d.recovery.isoformat() if d.recovery else "not recovered"}</td>'
            f'<td class="neg">{d.depth * 100:.2f}%</td><td>{d.days:,} days</td></tr>' for d in episodes[:limit]]
    return _table(("Peak", "Valley", "Recovery", "Depth", "Duration"), rows, "compact")


def signals_html(groups: pl.DataFrame, total: int, limit: int) -> str:
    """Signals grouped by action, outcome and reason (numbers as #), the figures as min/median/max."""
    if groups.height == 0:
        return '<p class="note">The strategy gave no signals.</p>'

    def figure(value: float | None) -> str:
        return "" if value is None else f"{value:,.2f}"

    rows = [f'<tr><td class="l">{e(r["action"])}</td><td class="l">{e(r["outcome"])}</td>'
            f'<td class="l reason">{e(r["reason"])}</td><td>{r["signals"]:,}</td><td>{figure(r["min"])}</td>'
            f'<td>{figure(r["median"])}</td><td>{figure(r["max"])}</td></tr>' for r in groups.head(limit).iter_rows(named=True)]
    note = (f'<p class="note">{total:,} signals in {groups.height:,} groups. Figure: the number in the outcome '
            "(e.g. the buying power left), else a number ending the reason (e.g. a price); numbers in the keys "
            "show as #.</p>")
    more = (f'<p class="note more">{groups.height - limit:,} smaller groups not shown.</p>'
            if groups.height > limit else "")
    return note + _table(("Action", "Outcome", "Reason", "Signals", "Figure: min", "median", "max"), rows,
                         "compact signals") + more


def trades_html(trades: pl.DataFrame, limit: int, open_note: str) -> str:
    """The first `limit` trades by entry time, then a link to the full list."""
    total = trades.height
    if total == 0:
        return f'<p class="note">No trades: no position was opened and closed. {e(open_note)}</p>'
    rows = []
    for i, t in enumerate(trades.head(limit).iter_rows(named=True), start=1):
        pnl, ret = t["pnl"], t["return_pct"]
        rows.append(
            f'<tr class="trade"><td>{i}</td><td class="l">{e(t["symbol"])}</td>'
            f'<td class="l">{e(when(t["entry_ts"]))}</td><td class="l">{e(when(t["exit_ts"]))}</td>'
            f'<td>{e(held_for(t["duration"]))}</td><td>{t["qty"]:,.0f}</td><td>${t["entry_price"]:,.2f}</td>'
            f'<td>${t["exit_price"]:,.2f}</td><td class="{signed(pnl)}">{e(money(pnl))}</td>'
            f'<td class="{signed(ret)}">{ret:.2f}%</td><td>{e(money(t["costs"]))}</td>'
            f'<td class="l">{e(t["exit_reason"])}</td></tr>'
        )
    wins = int((trades["pnl"] > 0).sum())
    net = float(trades["pnl"].sum())
    summary = (f'<p class="note">{total:,} round trips, {wins:,} winners; net P&amp;L after costs {e(money(net))}. '
               f"{e(open_note)}Times are New York; prices are average fill prices; P&amp;L and return are after "
               f'commissions and fees. All trades: <a href="{TRADES_CSV}">{TRADES_CSV}</a>.</p>')
    truncated = (f'<p class="note truncated"><b>Showing the first {len(rows):,} of {total:,} trades</b> '
                 f'(by entry time); {total - len(rows):,} more in <a href="{TRADES_CSV}">{TRADES_CSV}</a>.</p>'
                 if total > len(rows) else "")
    head = ("<tr><th>#</th><th class=\"l\">Symbol</th><th class=\"l\">Entry</th><th class=\"l\">Exit</th><th>Held</th>"
            "<th>Qty</th><th>Entry price</th><th>Exit price</th><th>P&amp;L</th><th>Return</th><th>Costs</th>"
            "<th class=\"l\">Exit reason</th></tr>")
    return f'{summary}{truncated}<table class="trades"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def plain(value: object) -> str:
    """An assumption value (not a dict) as text: no guessing from names."""
    if isinstance(value, str):
        return value
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:.10g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return ", ".join(plain(v) for v in items)
    return str(value)


def _assumption_value(value: object) -> str:
    if isinstance(value, Mapping):
        if not value:
            return "none"
        inner = "".join(f"<dt>{e(k)}</dt><dd>{_assumption_value(v)}</dd>" for k, v in value.items())
        return f"<dl>{inner}</dl>"
    return e(plain(value))


def assumptions_html(assumptions: Mapping[str, object]) -> str:
    """What the numbers assume, in the given order."""
    if not assumptions:
        return '<p class="note">No assumptions were given.</p>'
    items = "".join(f"<dt>{e(k)}</dt><dd>{_assumption_value(v)}</dd>" for k, v in assumptions.items())
    return f'<dl class="assumptions">{items}</dl>'

