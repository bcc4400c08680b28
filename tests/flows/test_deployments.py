"""Every deployment in prefect.yaml runs, through Prefect, with its own parameters on the bundled
data, unless SKIPPED says why it cannot run here; a deployment in neither list fails the suite.

The warehouse is built by the deployments themselves, in the order a new install runs them:
ingests first, then what reads them. The bundled files are used as they are, but for the daily
panel, cut to a few symbols so that the panel's flows take seconds, not minutes."""

from __future__ import annotations

import gzip
import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from prefect import Flow

from tapeflow.config import PROJECT_DATA, load_settings
from tapeflow.sources.replay import DAILY_FILE
from tapeflow.sources.universe_files import write_panel_universe
from warehouse import open_warehouse

PREFECT_YAML = Path(__file__).resolve().parents[2] / "prefect.yaml"
DEPLOYMENTS: list[dict[str, Any]] = yaml.safe_load(PREFECT_YAML.read_text())["deployments"]

# GIS has a split in the window (priced across by the backtests), CVS the one jump no action explains.
PANEL_SYMBOLS = ("AAPL", "CVS", "GE", "GIS", "INTC", "MSFT", "XOM")

# Data first, then what reads it: the order a new install runs them in.
RUN_ORDER = (
    "ingest-actions/bundled-corporate-actions",
    "ingest-bars/bundled-daily-bars",
    "ingest-universe/bundled-universes",
    "ingest-bars/bundled-spy-minute-bars",
    "backfill-bars/backfill-bundled-daily-bars",
    "backfill-watchlist/backfill-scanner-watchlists",
    "train-sentiment/train-sentiment-quick",
    "ingest-news/bundled-headlines",
    "score-news/score-unread-headlines",
    "backtest/backtest-sma-cross",
    "backtest/backtest-watchlist-momentum",
    "backtest/backtest-opening-range",
    "backtest/backtest-news-catalyst",
    "walk-forward/walk-forward-sma-cross",
    "perturb/perturb-sma-cross",
    "param-grid/param-grid-sma-cross",
    "paper-vs-backtest/compare-paper-to-backtest-after-close",
    "record-results/record-handed-back-results",  # nothing handed back on one machine: records none
    "adopt-model/adopt-handed-back-model",  # nor any model
)

# Run with other values than the deployment's, and why.
CHEAPER: dict[str, dict[str, Any]] = {
    # Two of its thirteen monthly runs: the rest repeat them on the months replay-daily stored.
    "backfill-bars/backfill-bundled-daily-bars": {"start": "2010-07-01"},
    # 48 sentences instead of 2,500 (about a minute of training); a model this small cannot beat
    # the lexicon baseline, so it is made current by hand for the deployments after it.
    "train-sentiment/train-sentiment-quick": {"subset": 48, "held_out_limit": 30, "make_current": True},
}

LIVE = "live market: acts on the session at the wall clock (nothing outside its hours); the bundled data has no today"
SKIPPED: dict[str, str] = {
    "ingest-bars/vendor-minute-bars-in-session": LIVE + "; today's bars come from a vendor (keys)",
    "ingest-bars/vendor-daily-bars-after-close": LIVE + "; today's bars come from a vendor (keys)",
    "snapshot-watchlist/bullalert-watchlist-every-minute": LIVE + "; BullAlert's list over the network",
    "snapshot-watchlist/scanner-watchlist-pre-market": LIVE + "; backfill-watchlist/backfill-scanner-watchlists "
                                                       "runs the same scanner on the panel",
    "monitor/monitor-every-minute-in-session": LIVE + "; it watches running trading sessions",
    "trade-session/paper-opening-range-daily": LIVE + "; runs until the close and needs a promotion",
    "trade-session/paper-watchlist-momentum-daily": LIVE + "; runs until the close and needs a promotion",
    "ingest-news/vendor-headlines-every-5-minutes": LIVE + "; the last 15 minutes of a vendor's headlines (keys)",
    "stream-news/alpaca-news-stream-market-days": "vendor keys: Alpaca's news websocket, listened to for 960 minutes",
    "train-sentiment/train-sentiment-full": "fine-tunes on 7,263 sentences for two epochs (~10 min on 2 cores); "
                                            "train-sentiment/train-sentiment-quick runs the same flow here",
    # Run with these parameters by other tests: either would cost about as much as this whole test.
    "trade-session/replay-opening-range-day": "a replayed day, ~35 s of CPU: tests/flows/test_trade.py runs "
                                              "trade_session with these parameters and checks its fills against the backtest",
    "demo/demo": "these flows in one run (1-2 min, and a minute of training): `make demo` runs it with its defaults, "
                 "tests/flows/test_ingest.py runs the flow twice on the whole bundled data",
}


def flow_of(deployment: dict[str, Any]) -> Flow[..., object]:
    path, function = deployment["entrypoint"].split(":")
    return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), function)


def key(deployment: dict[str, Any]) -> str:
    """flow/deployment, as Prefect names a deployment (names alone repeat across flows)."""
    return f"{flow_of(deployment).name}/{deployment['name']}"


BY_KEY = {key(d): d for d in DEPLOYMENTS}


def test_every_deployment_is_run_or_skipped_with_a_reason() -> None:
    assert len(BY_KEY) == len(DEPLOYMENTS), "two deployments share a flow/name"
    assert sorted(BY_KEY) == sorted((*RUN_ORDER, *SKIPPED))
    assert set(CHEAPER) <= set(RUN_ORDER)


def cut_bundled_data(root: Path) -> Path:
    """A data folder under `root`: the bundled data with the daily panel cut to PANEL_SYMBOLS."""
    data = root / "data"
    data.mkdir()
    for folder in ("intraday", "news", "sentiment", "tickers", "actions"):
        (data / folder).symlink_to(PROJECT_DATA / folder)
    (data / DAILY_FILE).parent.mkdir()
    panel = pl.read_csv(PROJECT_DATA / DAILY_FILE, infer_schema=False).filter(pl.col("Symbol").is_in(PANEL_SYMBOLS))
    (data / DAILY_FILE).write_bytes(gzip.compress(panel.write_csv().encode()))
    write_panel_universe(data)  # sp500-2010, as tapeflow derives it from the (cut) panel
    return data


@pytest.fixture(scope="module")
def bundled_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """TAPEFLOW_HOME in a temp dir, over the bundled data with the daily panel cut to PANEL_SYMBOLS."""
    root = tmp_path_factory.mktemp("deployments")
    data = cut_bundled_data(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TAPEFLOW_HOME", str(root / "home"))
        mp.setenv("TAPEFLOW_DATA_DIR", str(data))
        mp.setenv("TAPEFLOW_LOCK_TIMEOUT_S", "5")
        mp.chdir(root)
        yield root / "home"


def check_result(name: str, result: Any) -> None:
    """What a run must have done beyond finishing, where success alone could hide an empty run."""
    if name == "ingest-news/bundled-headlines":  # both sample files: 2010's 14 (one bad on purpose), 2011's 11
        assert (result["fetched"], result["inserted"], result["quarantined"]) == (25, 24, 1), result
    if name == "backtest/backtest-news-catalyst":  # the sample headlines meet the minute bars
        with open_warehouse(load_settings()).read() as con:
            row = con.execute("SELECT assumptions FROM backtest_runs WHERE run_id = ?", [result["run_id"]]).fetchone()
        assert row is not None, f"run {result['run_id']} was not recorded"
        assert json.loads(row[0])["news"].startswith("11 scored headline-ticker rows"), row[0]
    if name == "adopt-model/adopt-handed-back-model":
        assert result == {"models": []}, result
    if name == "record-results/record-handed-back-results":
        assert result == {"folders": 0, "runs": [], "rows": 0}, result
    if name == "backtest/backtest-opening-range":
        assert result["trades"] > 0, result
        # An intraday strategy holds nothing at the daily marks: exposure counts the time held from the fills.
        assert 0 < result["exposure"] < 1, result


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_every_runnable_deployment_succeeds_with_its_parameters(bundled_home: Path) -> None:
    failures = []
    for name in RUN_ORDER:
        deployment = BY_KEY[name]
        parameters = {**(deployment.get("parameters") or {}), **CHEAPER.get(name, {})}
        state = flow_of(deployment)(**parameters, return_state=True)
        if not state.is_completed():
            failures.append(f"{name}: {state.type.value}: {state.message}")
            continue
        try:
            check_result(name, state.result())
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    assert failures == []
