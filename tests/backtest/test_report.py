"""The backtest report: a real SMA-cross backtest on the bundled S&P 500 panel, rendered to a
self-contained HTML file with its charts, checked for content, safety and determinism (the
tearsheet's numbers are checked in test_tearsheet.py)."""

from __future__ import annotations

import base64
import hashlib
import html
import math
import re
from datetime import UTC, datetime
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import polars as pl
import pytest

from strategies.sma_cross import SmaCross
from tapeflow.backtest.benchmark import buy_and_hold
from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import Commission, Costs, Slippage
from tapeflow.backtest.engine import BacktestResult, simulate
from tapeflow.backtest.report import (
    MAX_TRADES,
    TRADES_CSV,
    equity_png_path,
    format_metric,
    headline_pairs,
    metric_kind,
    monthly_returns,
    png_size,
    render_report,
)
from tapeflow.config import PROJECT_DATA
from tapeflow.schemas import SIGNAL_SCHEMA
from tapeflow.sources.base import Window
from tapeflow.sources.replay import ReplaySource
from tapeflow.strategy.history import BAR_COLUMNS, History

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WIDE_CHARTS = ("equity.png", "drawdown.png")
CHARTS = (*WIDE_CHARTS, "rolling.png", "returns.png", "positions.png")
PRICE_CHARTS = ("price-1.png", "price-2.png", "price-3.png")  # with the bars: the top 3 symbols by |P&L|
CONFIG = BacktestConfig(
    cash=100_000.0,
    costs=Costs(commission=Commission(per_share=0.005, minimum=1.0), slippage=Slippage(bps=5)),
)
ASSUMPTIONS = {
    "fill rule": "Market orders fill at the next bar's open (never on the bar that decided) & pay slippage <always>.",
    "slippage": "5 bps per side",
    "commissions": "$0.005/share, minimum $1.00 per order",
    "universe": "the first 20 symbols of the bundled S&P 500 panel",
    "survivorship": "the panel is a 2010 membership snapshot: survivorship-biased",
    "config": CONFIG.describe(),
}


@pytest.fixture(scope="module")
def history() -> History:
    source = ReplaySource(PROJECT_DATA)
    symbols = source.symbols("1d")[:20]
    window = Window(datetime(2009, 1, 1, tzinfo=UTC), datetime(2011, 1, 1, tzinfo=UTC))
    raw = source.bars(symbols, "1d", window)
    return History(bars=raw.filter(pl.col("problem").is_null()).select(*BAR_COLUMNS))


def _run(history: History, fast: int, slow: int) -> BacktestResult:
    return simulate(history.bars, SmaCross(fast=fast, slow=slow).signals(history), CONFIG)


@pytest.fixture(scope="module")
def busy(history: History) -> BacktestResult:
    """SMA 3/8: more round trips than the report lists."""
    result = _run(history, 3, 8)
    assert result.trades.height > MAX_TRADES
    return result


@pytest.fixture(scope="module")
def calm(history: History) -> BacktestResult:
    """SMA 10/30: fewer round trips than the busy run."""
    result = _run(history, 10, 30)
    assert 10 < result.trades.height < 200
    return result


def _metrics(result: BacktestResult) -> dict[str, object]:
    equity = result.equity["equity"]
    return {
        "total_return": result.final_equity / result.start_cash - 1,
        "max_drawdown": float((equity / equity.cum_max() - 1).min()),
        "sharpe": 0.8123,
        "final_equity": result.final_equity,
        "net_pnl": float(result.trades["pnl"].sum()),
        "trades": result.trades.height,
        "win_rate": float((result.trades["pnl"] > 0).mean()),
        "max_drawdown_days": 57,
        "max_drawdown_duration": 1,
        "alpha": -0.0627,
        "profit_factor": 1.2345,
        "benchmark": "none <given>",
        "turnover": None,
    }


def _render(result: BacktestResult, out_dir: Path, run_id: str = "run-1", **kwargs) -> Path:
    return render_report(result, run_id=run_id, title="SMA cross <20 names> & costs", metrics=_metrics(result),
                         assumptions=ASSUMPTIONS, out_dir=out_dir, **kwargs)


@pytest.fixture(scope="module")
def rendered(busy: BacktestResult, history: History, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _render(busy, tmp_path_factory.mktemp("report"), bars=history.bars,
                   benchmark=buy_and_hold(history.bars, CONFIG))


def _png_chunks(data: bytes) -> list[bytes]:
    chunks, at = [], 8
    while at < len(data):
        length = int.from_bytes(data[at:at + 4], "big")
        chunks.append(data[at + 4:at + 8])
        at += 12 + length
    return chunks


def test_files_are_written_next_to_the_html(rendered: Path):
    assert rendered.name == "report.html" and rendered.parent.name == "run-1"
    for name in ("report.html", TRADES_CSV, *CHARTS, *PRICE_CHARTS):
        assert (rendered.parent / name).is_file()
    for name in (*CHARTS, *PRICE_CHARTS):
        assert (rendered.parent / name).stat().st_size < 150_000
    assert equity_png_path(rendered) == rendered.parent / "equity.png"


@pytest.mark.parametrize("name", [*CHARTS, *PRICE_CHARTS])
def test_charts_are_valid_pngs_without_timestamps(rendered: Path, name: str):
    data = (rendered.parent / name).read_bytes()
    assert data[:8] == PNG_SIGNATURE
    chunks = _png_chunks(data)
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND"
    assert b"tIME" not in chunks and b"Software" not in data
    pixels = mpimg.imread(rendered.parent / name)
    height, width = pixels.shape[:2]
    assert (width, height) == png_size(data)
    if name in WIDE_CHARTS:
        assert width == 1000 and 150 <= height <= 320
    else:  # two or three to a row
        assert width in (500, 330) and 180 <= height <= 240
    assert pixels.std() > 0  # something was drawn


def test_html_embeds_the_same_pngs(rendered: Path):
    page = rendered.read_text("utf-8")
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert [base64.b64decode(e) for e in embedded] == [(rendered.parent / n).read_bytes() for n in (*CHARTS, *PRICE_CHARTS)]


def test_no_external_urls(rendered: Path):
    page = rendered.read_text("utf-8")
    assert "http://" not in page and "https://" not in page
    assert "//" not in re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert all(src.startswith("data:") for src in re.findall(r'src="([^"]*)"', page))
    assert set(re.findall(r'href="([^"]*)"', page)) == {TRADES_CSV}  # the CSV next to it, by its relative name
    assert "<script" not in page and "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page  # a browser would refuse to fetch anything


def test_metric_values_are_formatted(rendered: Path, busy: BacktestResult):
    page = rendered.read_text("utf-8")
    metrics = _metrics(busy)
    expected = {
        "total_return": f"{(busy.final_equity / busy.start_cash - 1) * 100:,.2f}%",
        "final_equity": f"${busy.final_equity:,.2f}",
        "trades": f"{busy.trades.height:,} trades",
        "sharpe": "0.81",
        "max_drawdown_days": "57 days",
        "max_drawdown_duration": "1 day",
        "alpha": "-6.27%",
        "profit_factor": "1.23",
        "benchmark": "none <given>",
        "turnover": "—",
    }
    for name in metrics:
        value = format_metric(name, metrics[name])
        assert f'<td class="k">{name}</td><td class="v">{html.escape(value)}</td>' in page
    assert headline_pairs(metrics)[:2] == [("total_return", expected["total_return"]), ("max_drawdown", format_metric(
        "max_drawdown", metrics["max_drawdown"]))]
    for name, value in expected.items():
        assert format_metric(name, metrics[name]) == value
    assert page.index("<td class=\"k\">total_return") < page.index("<td class=\"k\">turnover")  # given order


def test_assumptions_in_order_and_escaped(rendered: Path):
    page = rendered.read_text("utf-8")
    section = page[page.index('<dl class="assumptions">'):]
    keys = [html.unescape(k) for k in re.findall(r"<dt>(.*?)</dt>", section)]
    assert keys[:5] == list(ASSUMPTIONS)[:5] and keys[5] == "config"
    for text in list(ASSUMPTIONS.values())[:5]:
        assert html.escape(text) in page
    assert "&lt;always&gt;" in page and "<always>" not in page
    assert "<dt>per_share</dt><dd>0.005</dd>" in section and "<dt>cash</dt><dd>100,000</dd>" in section
    assert "<title>SMA cross &lt;20 names&gt; &amp; costs</title>" in page


def test_trade_list_is_truncated_with_a_note(rendered: Path, busy: BacktestResult):
    page = rendered.read_text("utf-8")
    assert page.count('<tr class="trade">') == MAX_TRADES
    assert f"Showing the first {MAX_TRADES} of {busy.trades.height} trades" in page
    assert f"{busy.trades.height - MAX_TRADES} more in <a href=\"{TRADES_CSV}\">" in page
    first = busy.trades.sort("entry_ts", "symbol").row(0, named=True)
    row = re.search(r'<tr class="trade"><td>1</td><td class="l">([^<]*)</td>', page)
    assert row and row.group(1) == first["symbol"]
    signed = pl.when(pl.col("side") == "buy").then(pl.col("qty")).otherwise(-pl.col("qty"))
    still_open = busy.fills.group_by("symbol").agg(signed.sum().alias("held")).filter(pl.col("held") != 0).height
    assert still_open > 0 and f"{still_open} positions still open at the end" in page


def test_short_trade_list_is_complete(calm: BacktestResult, tmp_path: Path):
    page = _render(calm, tmp_path, max_trades=500).read_text("utf-8")
    assert page.count('<tr class="trade">') == calm.trades.height
    assert "Showing the first" not in page
    assert _render(calm, tmp_path, run_id="few", max_trades=10).read_text("utf-8").count('<tr class="trade">') == 10


def test_monthly_returns_compound_to_the_total(busy: BacktestResult, rendered: Path):
    months = monthly_returns(busy)
    assert months.select("year", "month").rows() == [(2009, m) for m in range(8, 13)] + [(2010, m) for m in range(1, 9)]
    assert math.isclose(math.prod(1 + r for r in months["ret"]), busy.final_equity / busy.start_cash, rel_tol=1e-12)
    page = rendered.read_text("utf-8")
    assert re.search(r'<table class="monthly">.*?<th class="l">2009</th>.*?<th class="l">2010</th>', page)


def test_rendering_is_deterministic(busy: BacktestResult, history: History, tmp_path: Path):
    digests = []
    for attempt in ("a", "b"):
        folder = _render(busy, tmp_path / attempt, bars=history.bars, benchmark=buy_and_hold(history.bars, CONFIG)).parent
        digests.append({p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())})
    assert set(digests[0]) == {"report.html", TRADES_CSV, *CHARTS, *PRICE_CHARTS}
    assert digests[0] == digests[1]


def test_a_result_without_trades_renders(history: History, tmp_path: Path):
    empty = simulate(history.bars, pl.DataFrame(schema=SIGNAL_SCHEMA), CONFIG)
    assert empty.trades.height == 0 and empty.equity.height > 0
    path = render_report(empty, run_id="flat", title="Nothing traded", metrics={"total_return": 0.0, "trades": 0},
                         assumptions={}, out_dir=tmp_path)
    page = path.read_text("utf-8")
    assert "No trades" in page and '<tr class="trade">' not in page and "http" not in page.replace("http-equiv", "")
    for name in CHARTS:
        assert (path.parent / name).read_bytes()[:8] == PNG_SIGNATURE


def test_a_result_without_bars_renders(tmp_path: Path):
    nothing = simulate(pl.DataFrame(schema=BAR_COLUMNS), pl.DataFrame(schema=SIGNAL_SCHEMA), CONFIG)
    path = render_report(nothing, run_id="nothing", title="No data", metrics={}, assumptions={}, out_dir=tmp_path)
    page = path.read_text("utf-8")
    assert "No metrics were given" in page and "no monthly returns" in page
    assert [png_size((path.parent / n).read_bytes()) for n in CHARTS] == [(1000, 300), (1000, 170), (500, 220),
                                                                         (500, 220), (500, 220)]
    assert (path.parent / TRADES_CSV).read_text("utf-8").startswith("symbol,entry_ts,exit_ts,")


@pytest.mark.parametrize("run_id", ["", "../up", "a/b", ".hidden", "x y"])
def test_run_id_must_be_one_plain_path_component(busy: BacktestResult, tmp_path: Path, run_id: str):
    with pytest.raises(ValueError, match="run_id"):
        _render(busy, tmp_path, run_id=run_id)


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("total_return", 0.1234, "12.34%"),
        ("cagr", -0.05, "-5.00%"),
        ("maxDrawdown", -0.25, "-25.00%"),
        ("exposure", 1, "100.00%"),
        ("stop_loss_pct", 0.02, "2.00%"),
        ("final_equity", 104321.5, "$104,321.50"),
        ("net_pnl", -1234.567, "-$1,234.57"),
        ("avg_win", 12, "$12.00"),
        ("costs", 0.5, "$0.50"),
        ("trades", 42, "42 trades"),
        ("trades", 1, "1 trade"),
        ("n_fills", 1234.0, "1,234 fills"),
        ("max_drawdown_days", 57, "57 days"),
        ("max_drawdown_duration", 119, "119 days"),
        ("longest_win_streak", 8, "8 trades"),
        ("turnover", 12.187, "12.19×"),
        ("alpha", 0.0512, "5.12%"),
        ("beta", 0.637, "0.64"),
        ("sharpe", 1.23456, "1.23"),
        ("profit_factor", float("inf"), "∞"),
        ("sortino", float("nan"), "n/a"),
        ("kelly", 0.012345, "0.01235"),
        ("note", "as given <b>", "as given <b>"),
        ("anything", None, "—"),
        ("flag", True, "yes"),
    ],
)
def test_format_metric(name: str, value: object, text: str):
    assert format_metric(name, value) == text


def test_metric_kind_rules():
    assert [metric_kind(n) for n in ("win_rate", "avg_win", "profit_factor", "n_trades", "volatility", "alpha", "kelly")] == [
        "fraction", "money", "ratio", "count", "fraction", "fraction", "number"]


def test_a_long_curve_is_drawn_from_its_envelope():
    """A minute backtest's million marks become two per pixel column, keeping every column's
    lowest and highest point (so the deepest drawdown is drawn), in time order."""
    from tapeflow.backtest.report.charts import envelope

    rng = np.random.default_rng(3)
    y = np.cumsum(rng.normal(size=1_000_000))
    x = np.arange(len(y))
    xs, ys = envelope(x, y, columns=1000)
    assert len(xs) == 2000 and np.all(np.diff(xs) >= 0)
    assert np.array_equal(y[xs], ys)  # points of the curve, not made up
    assert ys.min() == y.min() and ys.max() == y.max()
    column = np.linspace(0, len(y), 1001).astype(np.int64)
    for k in (0, 417, 999):  # each column's own extremes are kept
        part = y[column[k]:column[k + 1]]
        assert part.min() in ys[2 * k:2 * k + 2] and part.max() in ys[2 * k:2 * k + 2]
    assert len(envelope(x[:4000], y[:4000], columns=1000)[1]) == 4000  # a short curve is drawn whole
