"""The sma_cross tearsheet on the bundled daily panel, as a browser shows it: every section,
every chart loaded from the file itself, and under 4,000 px tall in a 1,200 px window."""

from __future__ import annotations

from pathlib import Path

import pytest

from tapeflow.backtest.report import render_report
from tapeflow.backtest.run import Backtest
from tests.backtest.test_tearsheet import panel, sma  # noqa: F401 (fixtures: the demo's run on the whole panel)

pytestmark = pytest.mark.slow

MAX_HEIGHT_PX = 4_000
SECTIONS = ("Headline metrics", "Equity", "Monthly and yearly returns", "Worst drawdowns", "Exit reasons",
            "Holding time and streaks", "Open positions", "P&L per symbol", "Top symbols", "Signals", "Trades",
            "Assumptions")


def test_the_sma_cross_tearsheet_fits_in_4000_px_with_every_section(sma: Backtest, page, tmp_path: Path):  # noqa: F811
    report = render_report(sma.result, run_id="sma", title="sma_cross (fast=10, slow=30, qty=100)", metrics=sma.metrics,
                           assumptions=sma.assumptions, out_dir=tmp_path, bars=sma.bars, benchmark=sma.benchmark)
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    height = page.evaluate("document.documentElement.scrollHeight")
    page.screenshot(path=str(tmp_path / "tearsheet.png"), full_page=True)
    assert height < MAX_HEIGHT_PX, f"{height} px tall (screenshot: {tmp_path / 'tearsheet.png'})"
    assert page.locator("h2").all_inner_texts() == list(SECTIONS)
    images = page.evaluate("[...document.images].map(i => [i.alt, i.naturalWidth])")
    assert len(images) >= 6 and all(width > 0 for _, width in images), images
    assert page.get_by_role("link", name="trades.csv").count() >= 1
