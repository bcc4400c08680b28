"""The tearsheet: one self-contained HTML file a person can open, mail or archive.

`render_report` writes `<out_dir>/<run_id>/report.html`, every chart next to it as a PNG
(`equity.png`, `drawdown.png`, ...) and also embedded as a data URI, and `trades.csv` with
every round trip, which the page links to by its relative name. Inline CSS, no script, no
external URL (a Content-Security-Policy meta tag keeps a browser from fetching anything).

Sections: headline metrics, equity against the buy-and-hold benchmark, drawdown, rolling
Sharpe and volatility, daily return histogram, open positions over time, monthly and yearly
returns, worst drawdowns, a price chart per top symbol with its fills, per-symbol P&L, exit
reasons, holding times and streaks, signals grouped by kind, the first trades, assumptions.
Output is deterministic: the same inputs give byte-identical files (no timestamps anywhere).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from tapeflow.backtest.analysis.periods import (
    ROLLING_DAYS,
    daily_return_values,
    drawdowns,
    monthly_returns,
    rolling_stats,
    yearly_returns,
)
from tapeflow.backtest.analysis.positions import open_positions
from tapeflow.backtest.analysis.signals import signal_groups
from tapeflow.backtest.analysis.trades import annotated_trades, durations, exit_breakdown, per_symbol_pnl, streaks
from tapeflow.backtest.benchmark import Benchmark
from tapeflow.backtest.engine import BacktestResult
from tapeflow.backtest.formatting import format_metric, money
from tapeflow.backtest.metrics import daily_equity
from tapeflow.backtest.report.charts import (
    drawdown_png,
    equity_png,
    ny_naive,
    png_size,
    positions_png,
    price_png,
    returns_png,
    rolling_png,
)
from tapeflow.backtest.report.tables import (
    TRADES_CSV,
    assumptions_html,
    drawdowns_html,
    e,
    exits_html,
    metrics_html,
    monthly_html,
    per_symbol_html,
    signals_html,
    trade_stats_html,
    trades_html,
)
from tapeflow.model import Side

MAX_TRADES = 25
MAX_SYMBOLS = 10
MAX_SIGNAL_GROUPS = 10
TOP_PRICE_CHARTS = 3
EQUITY_PNG = "equity.png"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

_CSS = """
*{box-sizing:border-box}
body{font:13px/1.4 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1d2330;background:#f4f5f7;margin:0}
main{max-width:1080px;margin:0 auto;padding:18px 28px 28px;background:#fff}
h1{font-size:21px;margin:0 0 2px}
h2{font-size:15px;margin:16px 0 6px;padding-bottom:3px;border-bottom:1px solid #dfe3ea}
.sub{color:#5b6475;margin:0 0 4px}
.note{color:#5b6475;font-size:12px;margin:4px 0}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:2px 8px;border-bottom:1px solid #eceff3;text-align:right;white-space:nowrap}
th{background:#f7f8fa;font-weight:600;color:#394152}
td.l,th.l{text-align:left}
table.metrics{width:100%}
table.metrics td.k{text-align:left;color:#394152}
table.metrics td.v{font-weight:600;padding-right:18px}
table.monthly td,table.monthly th{padding:2px 5px;min-width:52px}
table.compact,table.trades{font-size:12px}
table.trades{width:100%}
table.trades tbody tr:nth-child(even){background:#fafbfc}
tr.total td{border-top:1px solid #c9ced8;font-weight:600}
td.reason{white-space:normal}
.pos{color:#11703a}.neg{color:#b3261e}
img{display:block;max-width:100%;height:auto;margin:2px 0}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:8px 16px;align-items:start}
.grid3{display:grid;grid-template-columns:1fr 1fr 1fr;gap:8px}
.grid2>div,.grid3>div{min-width:0;overflow-x:auto}
dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;margin:0;font-size:12px}
dt{font-weight:600;color:#394152}
dd{margin:0;white-space:pre-wrap}
dd dl{gap:1px 10px}
dd dt{font-weight:500;color:#5b6475}
footer{margin-top:16px;color:#8a92a3;font-size:11px}
"""


@dataclass(frozen=True)
class Chart:
    """A chart's file name next to the report, its PNG bytes and its alt text."""

    name: str
    png: bytes
    alt: str


def equity_png_path(report: Path) -> Path:
    """The equity chart (PNG) written next to a report's HTML."""
    return Path(report).parent / EQUITY_PNG


def render_report(
    result: BacktestResult,
    *,
    run_id: str,
    title: str,
    metrics: Mapping[str, object],
    assumptions: Mapping[str, object],
    out_dir: Path,
    max_trades: int = MAX_TRADES,
    bars: pl.DataFrame | None = None,
    benchmark: Benchmark | None = None,
) -> Path:
    """Write `out_dir/run_id/report.html` (self-contained), its PNG charts and trades.csv next
    to it, and return the HTML's path; `bars` bring the price charts, `benchmark` its line."""
    if not _RUN_ID.match(run_id) or ".." in run_id:
        raise ValueError(f"run_id {run_id!r} must be one plain path component (letters, digits, . _ -)")
    if max_trades < 0:
        raise ValueError("max_trades must be >= 0")
    folder = Path(out_dir) / run_id
    folder.mkdir(parents=True, exist_ok=True)

    trades = annotated_trades(result)
    curve = _curve(result.equity)
    bench = _curve(benchmark.equity) if benchmark is not None else None
    charts_ = _charts(result, trades, curve, bench, benchmark, bars)
    for chart in charts_:
        (folder / chart.name).write_bytes(chart.png)
    _trades_csv(trades).write_csv(folder / TRADES_CSV)

    page = _page(result, trades, run_id=run_id, title=title, metrics=metrics, assumptions=assumptions,
                 curve=curve, charts_={c.name: c for c in charts_}, max_trades=max_trades, benchmark=benchmark)
    path = folder / "report.html"
    path.write_bytes(page.encode("utf-8"))
    return path


def _curve(equity: pl.DataFrame) -> pl.DataFrame:
    """An equity frame with New York wall-clock times (naive) and the drawdown, for charts."""
    if equity.height == 0:
        return pl.DataFrame(schema={"ny": pl.Datetime("us"), "equity": pl.Float64, "drawdown": pl.Float64})
    return equity.sort("ts").select(ny_naive().alias("ny"), pl.col("equity").cast(pl.Float64)).with_columns(
        (pl.col("equity") / pl.col("equity").cum_max() - 1).fill_nan(0.0).alias("drawdown"))


def _charts(result: BacktestResult, trades: pl.DataFrame, curve: pl.DataFrame, bench: pl.DataFrame | None,
            benchmark: Benchmark | None, bars: pl.DataFrame | None) -> list[Chart]:
    dates = daily_equity(result)["date"].to_list()
    out = [
        Chart(EQUITY_PNG, equity_png(curve, result.start_cash, bench, benchmark.label if benchmark else ""),
              "Equity curve against the benchmark"),
        Chart("drawdown.png", drawdown_png(curve), "Drawdown from the running peak"),
        Chart("rolling.png", rolling_png(rolling_stats(result), ROLLING_DAYS),
              f"Rolling {ROLLING_DAYS}-day Sharpe and volatility"),
        Chart("returns.png", returns_png(daily_return_values(result)), "Histogram of daily returns"),
        Chart("positions.png", positions_png(open_positions(result.fills, dates)), "Open positions over time"),
    ]
    if bars is not None and trades.height:
        first = result.equity["ts"].min() if result.equity.height else None
        top = per_symbol_pnl(trades).with_columns(pl.col("pnl").abs().alias("_size")).sort(
            ["_size", "symbol"], descending=[True, False]).head(TOP_PRICE_CHARTS)
        for rank, (symbol, pnl) in enumerate(top.select("symbol", "pnl").iter_rows(), start=1):
            closes = bars.filter((pl.col("symbol") == symbol) & (pl.col("end_ts") >= first if first is not None else True))
            closes = closes.sort("end_ts").select(ny_naive("end_ts").alias("ny"), "close")
            fills = result.fills.filter(pl.col("symbol") == symbol).select(ny_naive().alias("ny"), "side", "price")
            out.append(Chart(f"price-{rank}.png", price_png(symbol, closes, fills, pnl),
                             f"{symbol}: closes with buys and sells"))
    return out


def _trades_csv(trades: pl.DataFrame) -> pl.DataFrame:
    """Every round trip for the CSV: times in UTC (ISO 8601), duration in seconds."""
    return trades.select(
        "symbol", pl.col("entry_ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ"), pl.col("exit_ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        (pl.col("duration").dt.total_seconds()).alias("duration_s"), "qty", "entry_price", "exit_price", "pnl",
        "return_pct", "costs", "exit_reason", "exit_order_id")


def _open_at_end(result: BacktestResult) -> list[str]:
    """Symbols still held after the last fill (not round trips, so not in the trade list)."""
    fills = result.fills
    if fills.height == 0:
        return []
    signed_qty = pl.when(pl.col("side") == Side.BUY.value).then(pl.col("qty")).otherwise(-pl.col("qty"))
    held = fills.group_by("symbol").agg(signed_qty.sum().alias("held"))
    return sorted(held.filter(pl.col("held").abs() > 1e-9)["symbol"].to_list())


def _open_note(symbols: list[str]) -> str:
    if not symbols:
        return ""
    names = ", ".join(symbols[:10]) + (f" and {len(symbols) - 10} more" if len(symbols) > 10 else "")
    return (f"{len(symbols)} position{'s' if len(symbols) != 1 else ''} still open at the end ({names}): "
            "marked in the equity curve, not listed here. ")


def _img(chart: Chart) -> str:
    width, height = png_size(chart.png)
    data = base64.b64encode(chart.png).decode("ascii")
    return (f'<img src="data:image/png;base64,{data}" width="{width}" height="{height}" '
            f'alt="{e(chart.alt)}" title="{e(chart.name)}">')


def _page(result: BacktestResult, trades: pl.DataFrame, *, run_id: str, title: str, metrics: Mapping[str, object],
          assumptions: Mapping[str, object], curve: pl.DataFrame, charts_: dict[str, Chart], max_trades: int,
          benchmark: Benchmark | None) -> str:
    if curve.height:
        period = f"{curve['ny'][0]:%Y-%m-%d} to {curve['ny'][-1]:%Y-%m-%d} (New York), {curve.height:,} equity marks"
    else:
        period = "no bars"
    final = result.final_equity
    change = final / result.start_cash - 1 if result.start_cash else float("nan")
    sub = (f"Run {run_id} · {period} · starting cash {money(result.start_cash)} · final equity {money(final)} "
           f"({format_metric('return', change)}) · {result.trades.height:,} trades, {result.fills.height:,} fills")
    bench_note = (f"Grey: {benchmark.label}, bought at the first decision through the same fills and costs."
                  if benchmark is not None else "No benchmark: the bars the run used were not given.")
    still_open = _open_at_end(result)
    prices = [c for name, c in charts_.items() if name.startswith("price-")]
    price_block = ("<div class=\"grid3\">" + "".join(f"<div>{_img(c)}</div>" for c in prices) + "</div>"
                   '<p class="note">The symbols with the largest |P&amp;L|: closes, buys ▲ and sells ▼ at their fill prices.</p>'
                   if prices else '<p class="note">No price charts: no round trips, or the bars were not given.</p>')
    groups = signal_groups(result.decisions)
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        # Nothing may be fetched: images are data URIs, the style is inline; trades.csv is a link only.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{e(title)}</h1><p class=\"sub\">{e(sub)}</p>",
        "<h2>Headline metrics</h2>", metrics_html(metrics),
        "<h2>Equity</h2>", _img(charts_[EQUITY_PNG]), f'<p class="note">{e(bench_note)}</p>',
        _img(charts_["drawdown.png"]),
        "<div class=\"grid2\"><div>", _img(charts_["rolling.png"]), "</div><div>", _img(charts_["returns.png"]),
        "</div></div>",
        "<h2>Monthly and yearly returns</h2>", monthly_html(monthly_returns(result), yearly_returns(result)),
        "<div class=\"grid2\"><div><h2>Worst drawdowns</h2>", drawdowns_html(drawdowns(result)),
        "<h2>Exit reasons</h2>", exits_html(exit_breakdown(trades), len(still_open)),
        "<h2>Holding time and streaks</h2>", trade_stats_html(durations(trades), streaks(trades)),
        "</div><div><h2>Open positions</h2>", _img(charts_["positions.png"]),
        "<h2>P&amp;L per symbol</h2>", per_symbol_html(per_symbol_pnl(trades), MAX_SYMBOLS),
        "</div></div>",
        "<h2>Top symbols</h2>", price_block,
        "<h2>Signals</h2>", signals_html(groups, result.decisions.height, MAX_SIGNAL_GROUPS),
        "<h2>Trades</h2>", trades_html(trades, max_trades, _open_note(still_open)),
        "<h2>Assumptions</h2>", assumptions_html(assumptions),
        f"<footer>tapeflow backtest report · run {e(run_id)}</footer>",
        "</main></body></html>\n",
    ])
