"""The staged release: paper first, live only after enough reconciled paper sessions of the
same parameters (or a recorded override), live mode only with both switches; the CLI."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from typer.testing import CliRunner

from tapeflow.brokers.live_gate import LiveNotConfirmed
from tapeflow.cli.main import app
from tapeflow.config import Settings
from tapeflow.live.identity import params_hash, session_id
from tapeflow.live.promotion import (
    InvalidPromotion,
    NotPromoted,
    PromotionRefused,
    list_promotions,
    promote,
    require_promotion,
    resolve_params,
)
from tapeflow.model import Mode

UTC = UTC
FIRST = date(2024, 1, 2)
runner = CliRunner()


def add_sessions(warehouse, n: int, params: dict | None = None, *, strategy: str = "sma_cross", mode: str = "paper",
                 status: str = "finished", reconciled: bool = True, first: date = FIRST, broker: str = "sim") -> None:
    """`n` trading_sessions rows on consecutive days, as the trading session writes them."""
    resolved = resolve_params(strategy, params)
    with warehouse.write() as con:
        for k in range(n):
            day = first + timedelta(days=k)
            # Named columns: later migrations add columns this helper has no value for.
            con.execute("INSERT INTO trading_sessions (session_id, strategy, params, params_hash, broker, mode, "
                        "session_date, status, started_at, finished_at, reconciled) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [session_id(strategy, resolved, broker, mode, day), strategy, json.dumps(resolved),
                         params_hash(resolved), broker, mode, day, status, datetime(2024, 1, 1, tzinfo=UTC),
                         datetime(2024, 1, 1, tzinfo=UTC), reconciled])


def test_live_needs_paper_first_then_thirty_reconciled_paper_sessions(warehouse):
    params = {"fast": 5, "slow": 20}
    with pytest.raises(PromotionRefused, match="never promoted to paper"):
        promote(warehouse, "sma_cross", params, "live")
    paper = promote(warehouse, "sma_cross", params, "paper")
    assert (paper.stage, paper.paper_sessions, paper.override_reason) == (Mode.PAPER, 0, None)

    add_sessions(warehouse, 29, params)
    # None of these count: unreconciled, failed, live, other parameters, another broker on a day already counted.
    add_sessions(warehouse, 3, params, reconciled=False, first=date(2024, 6, 1))
    add_sessions(warehouse, 3, params, status="failed", first=date(2024, 7, 1))
    add_sessions(warehouse, 3, params, mode="live", first=date(2024, 8, 1))
    add_sessions(warehouse, 3, {"fast": 6, "slow": 20}, first=date(2024, 9, 1))
    add_sessions(warehouse, 1, params, broker="alpaca")
    with pytest.raises(PromotionRefused, match="has 29 reconciled paper session.*needs 30"):
        promote(warehouse, "sma_cross", params, "live")

    add_sessions(warehouse, 1, params, first=date(2024, 5, 1))
    live = promote(warehouse, "sma_cross", params, "live")
    assert (live.stage, live.paper_sessions, live.override_reason) == (Mode.LIVE, 30, None)
    assert live.params == {"fast": 5, "slow": 20, "qty": 100}  # defaults filled: the session's own parameter set
    assert live.params_hash == params_hash(live.params)
    # Promoting again changes nothing; a minimum of 0 makes no difference to a record that exists.
    assert promote(warehouse, "sma_cross", params, "live", min_paper_sessions=0) == live


def test_an_override_goes_live_early_with_its_reason_recorded(warehouse):
    promote(warehouse, "opening_range", {}, "paper")
    add_sessions(warehouse, 3, strategy="opening_range")
    with pytest.raises(InvalidPromotion, match="needs a reason"):
        promote(warehouse, "opening_range", {}, "live", override_reason="   ")
    live = promote(warehouse, "opening_range", {}, "live", override_reason="minimum size, watched all day")
    assert (live.paper_sessions, live.override_reason) == (3, "minimum size, watched all day")
    with warehouse.write() as con:
        stored = con.execute("SELECT stage, paper_sessions, override_reason FROM promotions WHERE stage = 'live'").fetchall()
    assert stored == [("live", 3, "minimum size, watched all day")]


def test_a_minimum_below_the_default_counts_only_with_a_recorded_reason(warehouse):
    promote(warehouse, "opening_range", {"range_minutes": 30}, "paper")
    add_sessions(warehouse, 5, {"range_minutes": 30}, strategy="opening_range")
    with pytest.raises(PromotionRefused, match="TAPEFLOW_MIN_PAPER_SESSIONS=5 is below the default 30 .* "
                                               "pass --override-reason"):
        promote(warehouse, "opening_range", {"range_minutes": 30}, "live", min_paper_sessions=5)
    assert list_promotions(warehouse).filter(stage="live").is_empty()

    live = promote(warehouse, "opening_range", {"range_minutes": 30}, "live", min_paper_sessions=5,
                   override_reason="five clean days at minimum size")
    assert (live.paper_sessions, live.override_reason) == (5, "five clean days at minimum size")
    with warehouse.write() as con:
        stored = con.execute("SELECT paper_sessions, override_reason FROM promotions WHERE stage = 'live'").fetchall()
    assert stored == [(5, "five clean days at minimum size")]


def test_a_raised_minimum_needs_no_reason_once_met_and_keeps_one_given_under_it(warehouse):
    promote(warehouse, "sma_cross", {}, "paper")
    add_sessions(warehouse, 31)
    with pytest.raises(PromotionRefused, match="has 31 reconciled paper session.*needs 40"):
        promote(warehouse, "sma_cross", {}, "live", min_paper_sessions=40)
    live = promote(warehouse, "sma_cross", {}, "live", min_paper_sessions=40, override_reason="31 is plenty here")
    assert live.override_reason == "31 is plenty here"


def test_a_reason_is_not_recorded_when_the_default_is_met(warehouse):
    promote(warehouse, "sma_cross", {}, "paper")
    add_sessions(warehouse, 30)
    live = promote(warehouse, "sma_cross", {}, "live", min_paper_sessions=0, override_reason="not needed")
    assert (live.paper_sessions, live.override_reason) == (30, None)


@pytest.mark.parametrize(("strategy", "params", "to", "message"), [
    ("no_such", {}, "paper", "unknown strategy 'no_such'; known: .*sma_cross"),
    ("sma_cross", {"fats": 5}, "paper", "sma_cross has no parameter fats"),
    ("sma_cross", {"fast": 2.5}, "paper", "fast must be a whole number"),
    ("sma_cross", {"fast": 40, "slow": 20}, "paper", "fast .40. must be shorter than slow"),
    ("sma_cross", {}, "backtest", "promoted to paper or live, not 'backtest'"),
])
def test_bad_input_is_refused_plainly(warehouse, strategy, params, to, message):
    with pytest.raises(InvalidPromotion, match=message):
        promote(warehouse, strategy, params, to)
    assert list_promotions(warehouse).is_empty()


def test_a_session_may_trade_only_what_was_promoted_and_live_only_with_both_switches(warehouse, settings):
    with pytest.raises(NotPromoted, match="not promoted to paper: run `tapeflow promote sma_cross --to paper`"):
        require_promotion(warehouse, "sma_cross", {}, "paper", settings)
    promote(warehouse, "sma_cross", {}, "paper")
    assert require_promotion(warehouse, "sma_cross", {"fast": 10}, Mode.PAPER, settings).stage is Mode.PAPER
    with pytest.raises(NotPromoted):  # other parameters are another promotion
        require_promotion(warehouse, "sma_cross", {"fast": 11}, "paper", settings)

    add_sessions(warehouse, 30)
    promote(warehouse, "sma_cross", {}, "live")
    with pytest.raises(LiveNotConfirmed, match="needs TAPEFLOW_MODE=live"):
        require_promotion(warehouse, "sma_cross", {}, "live", settings)
    with pytest.raises(LiveNotConfirmed, match="TAPEFLOW_LIVE_CONFIRMED is not set"):
        require_promotion(warehouse, "sma_cross", {}, "live", Settings(mode="live"))
    confirmed = Settings(mode="live", live_confirmed=True)
    assert require_promotion(warehouse, "sma_cross", {}, "live", confirmed).paper_sessions == 30
    with pytest.raises(NotPromoted, match="not promoted to live"):
        require_promotion(warehouse, "sma_cross", {"fast": 11}, "live", confirmed)


def test_the_cli_promotes_refuses_and_lists(warehouse, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    ok = runner.invoke(app, ["promote", "sma_cross", "--to", "paper", "-p", "fast=5", "-p", "slow=20"])
    assert ok.exit_code == 0, ok.output
    assert "promoted to paper" in ok.stdout and "{'fast': 5, 'slow': 20, 'qty': 100}" in ok.stdout

    refused = runner.invoke(app, ["promote", "sma_cross", "--to", "live", "-p", "fast=5", "-p", "slow=20"])
    assert refused.exit_code == 2 and "has 0 reconciled paper session(s), live needs 30" in refused.output

    monkeypatch.setenv("TAPEFLOW_MIN_PAPER_SESSIONS", "2")
    add_sessions(warehouse, 2, {"fast": 5, "slow": 20})
    live = runner.invoke(app, ["promote", "sma_cross", "--to", "live", "-p", "fast=5", "-p", "slow=20",
                               "--override-reason", "two clean days"])
    assert live.exit_code == 0, live.output
    assert "promoted to live" in live.stdout and "TAPEFLOW_LIVE_CONFIRMED" in live.stdout

    early = runner.invoke(app, ["promote", "opening_range", "--to", "paper"])
    assert early.exit_code == 0, early.output
    early = runner.invoke(app, ["promote", "opening_range", "--to", "live", "--override-reason", "tiny size"])
    assert early.exit_code == 0 and "override: tiny size" in early.stdout

    listed = runner.invoke(app, ["promotions"])
    assert listed.exit_code == 0, listed.output
    rows = [line for line in listed.stdout.splitlines() if "sma_cross" in line or "opening_range" in line]
    assert len(rows) == 4 and "tiny size" in listed.stdout and "two clean days" in listed.stdout

    unknown = runner.invoke(app, ["promote", "nope", "--to", "paper"])
    assert unknown.exit_code == 2 and "unknown strategy 'nope'" in unknown.stderr


def test_the_cli_refuses_a_lowered_minimum_without_a_reason_in_one_line(warehouse, monkeypatch):
    monkeypatch.setenv("TAPEFLOW_MIN_PAPER_SESSIONS", "0")
    assert runner.invoke(app, ["promote", "opening_range", "--to", "paper"]).exit_code == 0

    refused = runner.invoke(app, ["promote", "opening_range", "--to", "live"])
    assert refused.exit_code == 2, refused.output
    assert refused.stdout == "" and refused.stderr.count("\n") == 1
    assert "TAPEFLOW_MIN_PAPER_SESSIONS=0 is below the default 30" in refused.stderr
    assert "--override-reason" in refused.stderr
    with warehouse.write() as con:
        assert con.execute("SELECT count(*) FROM promotions WHERE stage = 'live'").fetchone() == (0,)

    live = runner.invoke(app, ["promote", "opening_range", "--to", "live", "--override-reason", "watched it all day"])
    assert live.exit_code == 0, live.output
    assert "with 0 reconciled paper session(s); override: watched it all day" in " ".join(live.stdout.split())
    with warehouse.write() as con:
        stored = con.execute("SELECT paper_sessions, override_reason FROM promotions WHERE stage = 'live'").fetchall()
    assert stored == [(0, "watched it all day")]
