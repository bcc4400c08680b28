"""The backtest report: one self-contained HTML file a person can open, mail or archive.

`render_report` writes `<out_dir>/<run_id>/report.html` with the charts next to it
(`equity.png`, `drawdown.png`) and also embedded in the HTML as data URIs, so the HTML
alone is the whole report: inline CSS, no script, no external URL (a Content-Security-Policy
meta tag keeps a browser from fetching anything even if a value held one).

Sections: headline metrics (whatever `metrics` holds), equity and drawdown charts, monthly
returns (New York months), the signal outcomes, the trade list (the first 200 trades by entry
time) and the assumptions (whatever `assumptions` holds, in order). Every text is escaped.

Output is deterministic: the same result and arguments give byte-identical files (no
timestamps anywhere, PNGs saved without the Software tag). Charts are drawn on
`matplotlib.figure.Figure` with an explicit Agg canvas, not pyplot: no process-wide backend
switch and no pyplot figure registry to leak figures into (nothing to plt.close; each figure
is cleared after saving and then dropped). Chart style is pinned with `rc_context`, so a
user's matplotlibrc does not change the images.

Metric values are formatted by name (see `format_metric`): names about returns, drawdown,
volatility, exposure, rates or `pct` hold fractions and show as percentages (0.1234 ->
12.34%), names in basis points (`bps`) show as such, names about money (equity, cash, P&L,
costs, fees ...) show with 2 decimals and a $, counts stay whole numbers. A value given as a string is shown as it is.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from tapeflow.backtest.engine import BacktestResult
from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.model import Side

if TYPE_CHECKING:  # matplotlib.typing is newer than the oldest matplotlib supported
    from matplotlib.typing import RcKeyType

MAX_TRADES = 200
CHART_SIZE_IN = (10.0, 3.2)  # inches; at CHART_DPI a 1000 x 320 px image
DRAWDOWN_SIZE_IN = (10.0, 2.4)
CHART_DPI = 100
_NY = str(NEW_YORK)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# Metric names are split into lowercase words; the first rule with a matching word wins.
_COUNT_WORDS = {"days", "bars", "sessions", "duration", "count", "n", "num", "number", "trades", "fills",
                "signals", "positions", "months", "years", "periods", "orders"}
_RATIO_WORDS = {"ratio", "factor", "sharpe", "sortino", "calmar", "beta", "multiple", "turnover", "skew", "kurtosis"}
_FRACTION_WORDS = {"return", "returns", "cagr", "drawdown", "dd", "volatility", "vol", "exposure", "rate", "pct",
                   "percent", "fraction"}
_BPS_WORDS = {"bps", "bp"}  # basis points: before money, so that slippage_bps is not shown in dollars
_MONEY_WORDS = {"equity", "cash", "pnl", "profit", "loss", "gain", "cost", "costs", "commission",
                "commissions", "fee", "fees", "slippage", "capital", "value", "usd", "dollars", "expectancy",
                "win", "balance", "notional"}

_CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1d2330;background:#f4f5f7;margin:0}
main{max-width:1080px;margin:0 auto;padding:24px 28px 40px;background:#fff;min-height:100vh}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:17px;margin:30px 0 10px;padding-bottom:4px;border-bottom:1px solid #dfe3ea}
.sub{color:#5b6475;margin:0 0 8px}
.note{color:#5b6475;font-size:13px;margin:6px 0}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid #eceff3;text-align:right;white-space:nowrap}
th{background:#f7f8fa;font-weight:600;color:#394152}
td.l,th.l{text-align:left}
table.metrics td.k{text-align:left;color:#394152}
table.metrics td.v{font-weight:600}
table.metrics{min-width:380px}
table.monthly td,table.monthly th{padding:4px 6px;min-width:56px}
table.trades{font-size:13px;width:100%}
table.trades tbody tr:nth-child(even){background:#fafbfc}
.pos{color:#11703a}.neg{color:#b3261e}
img{display:block;max-width:100%;height:auto;margin:6px 0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:6px 18px;margin:0}
dt{font-weight:600;color:#394152}
dd{margin:0;white-space:pre-wrap}
dd dl{grid-template-columns:max-content 1fr;gap:2px 12px;font-size:13px}
dd dt{font-weight:500;color:#5b6475}
.scroll{overflow-x:auto}
footer{margin-top:32px;color:#8a92a3;font-size:12px}
"""


@dataclass(frozen=True)
class _Chart:
    name: str
    png: bytes
    alt: str

    @property
    def size(self) -> tuple[int, int]:
        return png_size(self.png)


def render_report(
    result: BacktestResult,
    *,
    run_id: str,
    title: str,
    metrics: Mapping[str, object],
    assumptions: Mapping[str, object],
    out_dir: Path,
    max_trades: int = MAX_TRADES,
) -> Path:
    """Write `out_dir/run_id/report.html` (self-contained) plus `equity.png` and
    `drawdown.png` next to it, and return the HTML's path."""
    if not _RUN_ID.match(run_id) or ".." in run_id:
        raise ValueError(f"run_id {run_id!r} must be one plain path component (letters, digits, . _ -)")
    if max_trades < 0:
        raise ValueError("max_trades must be >= 0")
    folder = Path(out_dir) / run_id
    folder.mkdir(parents=True, exist_ok=True)

    curve = _curve(result)
    charts = [
        _Chart("equity.png", _equity_png(curve, result.start_cash), "Equity curve"),
        _Chart("drawdown.png", _drawdown_png(curve), "Drawdown from the running peak"),
    ]
    for chart in charts:
        (folder / chart.name).write_bytes(chart.png)

    page = _page(result, run_id=run_id, title=title, metrics=metrics, assumptions=assumptions,
                 curve=curve, charts=charts, max_trades=max_trades)
    path = folder / "report.html"
    path.write_bytes(page.encode("utf-8"))
    return path


# --- formatting -----------------------------------------------------------------------------

def _words(name: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return {w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w}


def metric_kind(name: str) -> str:
    """How a metric named `name` is shown: 'count', 'ratio', 'fraction', 'bps', 'money' or 'number'."""
    words = _words(name)
    if "%" in name:
        return "fraction"
    for kind, vocabulary in (("count", _COUNT_WORDS), ("ratio", _RATIO_WORDS), ("fraction", _FRACTION_WORDS),
                             ("bps", _BPS_WORDS), ("money", _MONEY_WORDS)):
        if words & vocabulary:
            return kind
    return "number"


def _money(value: float) -> str:
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.4g}"


def format_metric(name: str, value: object) -> str:
    """A metric value as text: fractions as %, money with 2 decimals, counts whole."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return _when(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
        if math.isnan(number):
            return "n/a"
        if math.isinf(number):
            return "∞" if number > 0 else "-∞"
        kind = metric_kind(name)
        if kind == "fraction":
            return f"{number * 100:,.2f}%"
        if kind == "money":
            return _money(number)
        if kind == "bps":
            return f"{number:,.2f} bps"
        if isinstance(value, (int, np.integer)) or (kind == "count" and number.is_integer()):
            return f"{int(value):,}"
        if kind == "ratio":
            return f"{number:,.2f}"
        return _number(number)
    return str(value)


def _when(value: datetime) -> str:
    """An instant in New York time, to the minute."""
    if value.tzinfo is not None:
        value = value.astimezone(NEW_YORK)
    return value.strftime("%Y-%m-%d %H:%M")


def _plain(value: object) -> str:
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
        return _when(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return ", ".join(_plain(v) for v in items)
    return str(value)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


# --- data -----------------------------------------------------------------------------------

def _curve(result: BacktestResult) -> pl.DataFrame:
    """The equity curve with New York wall-clock times (naive) for charts and months."""
    equity = result.equity
    if equity.height == 0:
        return pl.DataFrame(schema={"ny": pl.Datetime("us"), "equity": pl.Float64, "drawdown": pl.Float64})
    return (
        equity.sort("ts")
        .select(
            pl.col("ts").dt.convert_time_zone(_NY).dt.replace_time_zone(None).alias("ny"),
            pl.col("equity").cast(pl.Float64),
        )
        .with_columns((pl.col("equity") / pl.col("equity").cum_max() - 1).fill_nan(0.0).alias("drawdown"))
    )


def monthly_returns(result: BacktestResult) -> pl.DataFrame:
    """Return per New York calendar month (year, month, ret), from the last equity mark of each
    month against the month before's (the first month against the starting cash)."""
    curve = _curve(result)
    schema = {"year": pl.Int32, "month": pl.Int8, "ret": pl.Float64}
    if curve.height == 0:
        return pl.DataFrame(schema=schema)
    ends = (
        curve.group_by(pl.col("ny").dt.year().alias("year"), pl.col("ny").dt.month().alias("month"), maintain_order=True)
        .agg(pl.col("equity").last())
        .sort("year", "month")
    )
    previous = ends["equity"].shift(1).fill_null(float(result.start_cash))
    ret = (ends["equity"] / previous - 1).fill_nan(None)
    return ends.select(pl.col("year").cast(pl.Int32), pl.col("month").cast(pl.Int8)).with_columns(
        ret.cast(pl.Float64).alias("ret")
    )


# --- charts ---------------------------------------------------------------------------------

_RC: dict[RcKeyType, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.edgecolor": "#9aa3b2",
    "axes.linewidth": 0.8,
    "axes.grid": False,
    "xtick.color": "#394152",
    "ytick.color": "#394152",
    "path.simplify": True,
    "agg.path.chunksize": 0,
    "figure.facecolor": "white",
}


def _figure(size: tuple[float, float]) -> tuple[Figure, Axes]:
    fig = Figure(figsize=size, dpi=CHART_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.grid(True, color="#e6e9ef", linewidth=0.7)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=CHART_DPI, metadata={"Software": None})
    fig.clear()
    return buffer.getvalue()


def _date_axis(ax: Axes) -> None:
    locator = AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#5b6475")
    ax.set_xticks([])
    ax.set_yticks([])


def _equity_png(curve: pl.DataFrame, start_cash: float) -> bytes:
    with matplotlib.rc_context(_RC):
        fig, ax = _figure(CHART_SIZE_IN)
        if curve.height == 0:
            _empty(ax, "no equity marks: the backtest had no bars")
        else:
            x = curve["ny"].to_numpy()
            y = curve["equity"].to_numpy()
            ax.axhline(start_cash, color="#9aa3b2", linewidth=0.9, linestyle="--", label="starting cash")
            ax.plot(x, y, color="#1f5fbf", linewidth=1.4, label="equity")
            ax.margins(x=0.01)
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"${v:,.0f}"))
            ax.legend(loc="upper left", frameon=False)
            _date_axis(ax)
        return _png(fig)


def _drawdown_png(curve: pl.DataFrame) -> bytes:
    with matplotlib.rc_context(_RC):
        fig, ax = _figure(DRAWDOWN_SIZE_IN)
        if curve.height == 0:
            _empty(ax, "no equity marks: the backtest had no bars")
        else:
            x = curve["ny"].to_numpy()
            y = curve["drawdown"].to_numpy()
            ax.fill_between(x, y, 0.0, color="#d9534f", alpha=0.35, linewidth=0)
            ax.plot(x, y, color="#b3261e", linewidth=1.0)
            low = float(np.min(y)) if len(y) else 0.0
            ax.set_ylim(min(low * 1.1, -0.01), 0.002)
            ax.margins(x=0.01)
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0 if low < -0.05 else 1))
            _date_axis(ax)
        return _png(fig)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG from its IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# --- HTML -----------------------------------------------------------------------------------

def _signed_class(value: float | None) -> str:
    if value is None or value == 0 or math.isnan(value):
        return ""
    return "pos" if value > 0 else "neg"


def _metrics_html(metrics: Mapping[str, object]) -> str:
    if not metrics:
        return '<p class="note">No metrics were given.</p>'
    rows = "".join(
        f'<tr><td class="k">{_e(name)}</td><td class="v">{_e(format_metric(str(name), value))}</td></tr>'
        for name, value in metrics.items()
    )
    return f'<table class="metrics"><tbody>{rows}</tbody></table>'


def _pct1(ret: float) -> str:
    """A return as a percentage with one decimal; no '-0.0%'."""
    text = f"{ret * 100:.1f}%"
    return "0.0%" if text == "-0.0%" else text


def _heat(ret: float) -> str:
    """A background shade for a monthly return: green up, red down, full at +-10%."""
    if round(ret, 3) == 0:
        return ""
    strength = min(abs(ret) / 0.10, 1.0)
    alpha = round(0.08 + 0.47 * strength, 2)
    rgb = "46,160,67" if ret > 0 else "214,69,65"
    return f"background:rgba({rgb},{alpha})"


def _monthly_html(result: BacktestResult) -> str:
    months = monthly_returns(result)
    if months.height == 0:
        return '<p class="note">No equity marks, so no monthly returns.</p>'
    by_year: dict[int, dict[int, float | None]] = {}
    for row in months.iter_rows(named=True):
        by_year.setdefault(row["year"], {})[row["month"]] = row["ret"]
    head = "".join(f"<th>{m}</th>" for m in _MONTHS)
    body = []
    for year, values in by_year.items():
        cells = []
        for month in range(1, 13):
            ret = values.get(month)
            if ret is None:
                cells.append("<td></td>")
            else:
                style = _heat(ret)
                cells.append(f'<td style="{style}">{_pct1(ret)}</td>' if style else f"<td>{_pct1(ret)}</td>")
        known = [v for v in values.values() if v is not None]
        total = math.prod(1 + v for v in known) - 1 if known else None
        total_cell = "<td></td>" if total is None else f'<td class="{_signed_class(total)}"><b>{_pct1(total)}</b></td>'
        body.append(f'<tr><th class="l">{year}</th>{"".join(cells)}{total_cell}</tr>')
    return (
        f'<div class="scroll"><table class="monthly"><thead><tr><th class="l">Year</th>{head}<th>Year</th></tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table></div>'
        '<p class="note">Months are New York calendar months; each is the last equity mark of the month against '
        "the previous month's (the first month against the starting cash). The year column compounds its months.</p>"
    )


def _outcomes_html(result: BacktestResult) -> str:
    decisions = result.decisions
    if decisions.height == 0 or "outcome" not in decisions.columns:
        return '<p class="note">The strategy gave no signals.</p>'
    counts = (
        decisions.group_by("action", "outcome").agg(pl.len().alias("n")).sort(["n", "action", "outcome"], descending=[True, False, False])
    )
    rows = "".join(
        f'<tr><td class="l">{_e(r["action"])}</td><td class="l">{_e(r["outcome"])}</td><td>{r["n"]:,}</td></tr>'
        for r in counts.iter_rows(named=True)
    )
    return (
        f'<p class="note">{decisions.height:,} signals, and what became of each.</p>'
        f'<table><thead><tr><th class="l">Action</th><th class="l">Outcome</th><th>Signals</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _open_at_end(result: BacktestResult) -> list[str]:
    """Symbols still held after the last fill (not round trips, so not in the trade list)."""
    fills = result.fills
    if fills.height == 0:
        return []
    signed = pl.when(pl.col("side") == Side.BUY.value).then(pl.col("qty")).otherwise(-pl.col("qty"))
    held = fills.group_by("symbol").agg(signed.sum().alias("held"))
    return sorted(held.filter(pl.col("held").abs() > 1e-9)["symbol"].to_list())


def _open_note(result: BacktestResult) -> str:
    symbols = _open_at_end(result)
    if not symbols:
        return ""
    names = ", ".join(symbols[:10]) + (f" and {len(symbols) - 10} more" if len(symbols) > 10 else "")
    return (f"{len(symbols)} position{'s' if len(symbols) != 1 else ''} still open at the end ({names}): "
            "marked in the equity curve, not listed here. ")


def _trades_html(result: BacktestResult, max_trades: int) -> str:
    trades = result.trades
    total = trades.height
    if total == 0:
        return f'<p class="note">No trades: no position was opened and closed. {_e(_open_note(result))}</p>'
    shown = trades.sort("entry_ts", "symbol", "exit_ts").head(max_trades)
    rows = []
    for i, t in enumerate(shown.iter_rows(named=True), start=1):
        pnl, ret = t["pnl"], t["return_pct"]
        rows.append(
            f'<tr class="trade"><td>{i}</td><td class="l">{_e(t["symbol"])}</td>'
            f'<td class="l">{_e(_when(t["entry_ts"]))}</td><td class="l">{_e(_when(t["exit_ts"]))}</td>'
            f'<td>{t["qty"]:,.0f}</td><td>{t["entry_price"]:,.4f}</td><td>{t["exit_price"]:,.4f}</td>'
            f'<td class="{_signed_class(pnl)}">{_e(_money(pnl))}</td>'
            f'<td class="{_signed_class(ret)}">{ret:.2f}%</td><td>{_e(_money(t["costs"]))}</td></tr>'
        )
    wins = int((trades["pnl"] > 0).sum())
    net = float(trades["pnl"].sum())
    summary = (
        f'<p class="note">{total:,} round trips, {wins:,} winners; net P&amp;L after costs {_e(_money(net))}. '
        f"{_e(_open_note(result))}Times are New York; prices are average fill prices; "
        "P&amp;L and return are after commissions and fees.</p>"
    )
    truncated = (
        f'<p class="note truncated"><b>Showing the first {len(rows):,} of {total:,} trades</b> (by entry time); '
        "the rest are in the result's trades frame.</p>"
        if total > len(rows) else ""
    )
    head = ("<tr><th>#</th><th class=\"l\">Symbol</th><th class=\"l\">Entry</th><th class=\"l\">Exit</th><th>Qty</th>"
            "<th>Entry price</th><th>Exit price</th><th>P&amp;L</th><th>Return</th><th>Costs</th></tr>")
    return (
        f'{summary}{truncated}<div class="scroll"><table class="trades"><thead>{head}</thead>'
        f'<tbody>{"".join(rows)}</tbody></table></div>'
    )


def _assumption_value(value: object) -> str:
    if isinstance(value, Mapping):
        if not value:
            return "none"
        inner = "".join(f"<dt>{_e(k)}</dt><dd>{_assumption_value(v)}</dd>" for k, v in value.items())
        return f"<dl>{inner}</dl>"
    return _e(_plain(value))


def _assumptions_html(assumptions: Mapping[str, object]) -> str:
    if not assumptions:
        return '<p class="note">No assumptions were given.</p>'
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_assumption_value(v)}</dd>" for k, v in assumptions.items())
    return f'<dl class="assumptions">{items}</dl>'


def _img(chart: _Chart) -> str:
    width, height = chart.size
    data = base64.b64encode(chart.png).decode("ascii")
    return (f'<img src="data:image/png;base64,{data}" width="{width}" height="{height}" '
            f'alt="{_e(chart.alt)}" title="{_e(chart.name)}">')


def _page(result: BacktestResult, *, run_id: str, title: str, metrics: Mapping[str, object],
          assumptions: Mapping[str, object], curve: pl.DataFrame, charts: list[_Chart], max_trades: int) -> str:
    if curve.height:
        first, last = curve["ny"][0], curve["ny"][-1]
        period = f"{first:%Y-%m-%d} to {last:%Y-%m-%d} (New York), {curve.height:,} equity marks"
    else:
        period = "no bars"
    final = result.final_equity
    change = final / result.start_cash - 1 if result.start_cash else float("nan")
    sub = (
        f"Run {run_id} · {period} · starting cash {_money(result.start_cash)} · final equity {_money(final)} "
        f"({format_metric('return', change)}) · {result.trades.height:,} trades, {result.fills.height:,} fills"
    )
    equity, drawdown = charts
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        # Nothing may be fetched: images are data URIs, the style is inline.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1><p class=\"sub\">{_e(sub)}</p>",
        "<h2>Headline metrics</h2>", _metrics_html(metrics),
        "<h2>Equity</h2>", _img(equity),
        "<h2>Drawdown</h2>", _img(drawdown),
        "<h2>Monthly returns</h2>", _monthly_html(result),
        "<h2>Signals</h2>", _outcomes_html(result),
        "<h2>Trades</h2>", _trades_html(result, max_trades),
        "<h2>Assumptions</h2>", _assumptions_html(assumptions),
        f"<footer>tapeflow backtest report · run {_e(run_id)}</footer>",
        "</main></body></html>\n",
    ])
