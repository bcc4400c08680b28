"""The report's charts as PNG bytes: equity against the benchmark, drawdown, rolling Sharpe and
volatility, daily return histogram, open positions, and a price chart per symbol with its fills.

Drawn on `matplotlib.figure.Figure` with an explicit Agg canvas, not pyplot: no process-wide
backend switch and no figure registry to leak into. Style is pinned with `rc_context` so a
user's matplotlibrc does not change the images, and PNGs are saved without the Software tag
so the same inputs give the same bytes.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.model import Side

if TYPE_CHECKING:  # matplotlib.typing is newer than the oldest matplotlib supported
    from matplotlib.typing import RcKeyType

CHART_DPI = 100
WIDE = 10.0  # inches: 1000 px, the page's full width
HALF = 5.0  # two to a row
THIRD = 3.3  # three to a row
BLUE, GREY, RED, GREEN = "#1f5fbf", "#8a92a3", "#b3261e", "#11703a"
_NY = str(NEW_YORK)

_RC: dict[RcKeyType, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 8.5,
    "axes.edgecolor": "#9aa3b2",
    "axes.linewidth": 0.8,
    "axes.grid": False,
    "axes.titlesize": 9.0,
    "axes.titlelocation": "left",
    "xtick.color": "#394152",
    "ytick.color": "#394152",
    "path.simplify": True,
    "agg.path.chunksize": 0,
    "figure.facecolor": "white",
}


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG from its IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def ny_naive(column: str = "ts") -> pl.Expr:
    """`column` (UTC) as New York wall-clock time without a zone: what the axes show."""
    return pl.col(column).dt.convert_time_zone(_NY).dt.replace_time_zone(None)


def envelope(x: np.ndarray, y: np.ndarray, columns: int = int(WIDE * CHART_DPI)) -> tuple[np.ndarray, np.ndarray]:
    """At most each pixel column's lowest and highest point, in time order: the same line at the
    chart's resolution, drawn from a few thousand points instead of a minute backtest's million."""
    if len(y) <= 4 * columns:
        return x, y
    edges = np.linspace(0, len(y), columns + 1).astype(np.int64)
    keep = np.empty(2 * columns, dtype=np.int64)
    for k, (a, b) in enumerate(zip(edges[:-1].tolist(), edges[1:].tolist())):
        low, high = a + int(np.argmin(y[a:b])), a + int(np.argmax(y[a:b]))
        keep[2 * k], keep[2 * k + 1] = min(low, high), max(low, high)
    return x[keep], y[keep]


def _figure(size: tuple[float, float]) -> tuple[Figure, Axes]:
    fig = Figure(figsize=size, dpi=CHART_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    _style(ax)
    return fig, ax


def _style(ax: Axes) -> None:
    ax.grid(True, color="#e6e9ef", linewidth=0.7)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=CHART_DPI, metadata={"Software": None})
    fig.clear()
    return buffer.getvalue()


def _date_axis(ax: Axes) -> None:
    locator = AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#5b6475")
    ax.set_xticks([])
    ax.set_yticks([])


def _legend_above(ax: Axes) -> None:
    """The legend in a row above the plot, where no line can run under it."""
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=4, frameon=False, borderaxespad=0.2)


def equity_png(curve: pl.DataFrame, start_cash: float, benchmark: pl.DataFrame | None, label: str) -> bytes:
    """Equity (ny, equity) against starting cash and the benchmark's curve (ny, equity)."""
    with matplotlib.rc_context(_RC):
        fig, ax = _figure((WIDE, 3.0))
        if curve.height == 0:
            _empty(ax, "no equity marks: the backtest had no bars")
        else:
            ax.axhline(start_cash, color="#9aa3b2", linewidth=0.9, linestyle="--", label="starting cash")
            if benchmark is not None and benchmark.height:
                ax.plot(*envelope(benchmark["ny"].to_numpy(), benchmark["equity"].to_numpy()), color=GREY,
                        linewidth=1.1, label=f"benchmark: {label}")
            ax.plot(*envelope(curve["ny"].to_numpy(), curve["equity"].to_numpy()), color=BLUE, linewidth=1.4,
                    label="strategy")
            ax.margins(x=0.01)
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"${v:,.0f}"))
            _legend_above(ax)
            _date_axis(ax)
        return _png(fig)


def drawdown_png(curve: pl.DataFrame) -> bytes:
    """The fall from the running peak (ny, drawdown), shaded."""
    with matplotlib.rc_context(_RC):
        fig, ax = _figure((WIDE, 1.7))
        if curve.height == 0:
            _empty(ax, "no equity marks: the backtest had no bars")
        else:
            x, y = envelope(curve["ny"].to_numpy(), curve["drawdown"].to_numpy())
            ax.fill_between(x, y, 0.0, color="#d9534f", alpha=0.35, linewidth=0)
            ax.plot(x, y, color=RED, linewidth=1.0)
            low = float(np.min(y)) if len(y) else 0.0
            ax.set_ylim(min(low * 1.1, -0.01), 0.002)
            ax.margins(x=0.01)
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0 if low < -0.05 else 1))
            ax.set_title("Drawdown from the running peak")
            _date_axis(ax)
        return _png(fig)


def rolling_png(rolling: pl.DataFrame, days: int) -> bytes:
    """Rolling Sharpe (left axis) and annualised volatility (right axis) over `days` sessions."""
    with matplotlib.rc_context(_RC):
        fig, ax = _figure((HALF, 2.2))
        ax.set_title(f"Rolling {days}-day Sharpe and volatility")
        if rolling.height == 0:
            _empty(ax, f"fewer than {days} days of returns")
        else:
            x = rolling["date"].to_numpy()
            ax.plot(x, rolling["sharpe"].to_numpy(), color=BLUE, linewidth=1.1, label="Sharpe (left)")
            ax.axhline(0.0, color="#9aa3b2", linewidth=0.8)
            right = ax.twinx()
            right.plot(x, rolling["volatility"].to_numpy(), color="#d98e04", linewidth=1.1, label="volatility (right)")
            right.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
            right.spines["top"].set_visible(False)
            lines = ax.get_lines()[:1] + right.get_lines()
            ax.legend(lines, [str(line.get_label()) for line in lines], loc="lower left", bbox_to_anchor=(0.0, 1.08),
                      ncol=2, frameon=False, borderaxespad=0.0)
            ax.set_title("")
            _date_axis(ax)
        return _png(fig)


def returns_png(returns: np.ndarray) -> bytes:
    """Histogram of daily returns with the mean marked."""
    with matplotlib.rc_context(_RC):
        fig, ax = _figure((HALF, 2.2))
        ax.set_title("Daily returns")
        if returns.size == 0:
            _empty(ax, "no daily returns")
        else:
            ax.hist(returns, bins=min(50, max(10, returns.size // 5)), color=BLUE, alpha=0.75)
            ax.axvline(float(returns.mean()), color=RED, linewidth=1.0, label=f"mean {returns.mean():.2%}")
            ax.axvline(0.0, color="#9aa3b2", linewidth=0.8)
            span = float(np.abs(returns).max())
            ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=1 if span >= 0.02 else 2 if span >= 0.002 else 3))
            ax.set_ylabel("days")
            ax.legend(loc="upper right", frameon=False)
        return _png(fig)


def positions_png(held: pl.DataFrame) -> bytes:
    """The most positions held at once each day (date, held), as steps."""
    with matplotlib.rc_context(_RC):
        fig, ax = _figure((HALF, 2.2))
        ax.set_title("Open positions (most held at once, per day)")
        if held.height == 0:
            _empty(ax, "no days")
        else:
            ax.fill_between(held["date"].to_numpy(), held["held"].to_numpy(), step="post", color=BLUE, alpha=0.3,
                            linewidth=0)
            ax.step(held["date"].to_numpy(), held["held"].to_numpy(), where="post", color=BLUE, linewidth=1.0)
            ax.set_ylim(0, max(1, int(held["held"].to_numpy().max())) * 1.15)
            ax.yaxis.get_major_locator().set_params(integer=True)  # type: ignore[call-arg]
            ax.margins(x=0.01)
            _date_axis(ax)
        return _png(fig)


def price_png(symbol: str, closes: pl.DataFrame, fills: pl.DataFrame, pnl: float) -> bytes:
    """A symbol's closes (ny, close) with its buys (^) and sells (v) at their fill prices (ny, side, price)."""
    with matplotlib.rc_context(_RC):
        fig, ax = _figure((THIRD, 2.1))
        ax.set_title(f"{symbol}: P&L ${pnl:,.0f}" if pnl >= 0 else f"{symbol}: P&L -${-pnl:,.0f}")
        if closes.height == 0:
            _empty(ax, "no bars in the window")
        else:
            ax.plot(*envelope(closes["ny"].to_numpy(), closes["close"].to_numpy(), int(THIRD * CHART_DPI)),
                    color="#5b6475", linewidth=0.9)
            for side, marker, color in ((Side.BUY.value, "^", GREEN), (Side.SELL.value, "v", RED)):
                mine = fills.filter(pl.col("side") == side)
                ax.scatter(mine["ny"].to_numpy(), mine["price"].to_numpy(), marker=marker, s=22, color=color,
                           zorder=3, linewidths=0)
            ax.margins(x=0.02)
            locator = AutoDateLocator(minticks=2, maxticks=4)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        return _png(fig)
