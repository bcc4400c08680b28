"""Backtests in a universe of the day, on a real warehouse: an entry on a symbol that was not a
member at its decision is refused, an exit never is, a symbol that joins is traded only from
then, and the report states the universe and its survivorship from the table."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import ClassVar

import polars as pl
import pytest

from tapeflow.backtest.run import run_backtest
from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.model import Outcome, Timeframe
from tapeflow.sources.universe import load_membership, load_universe
from tapeflow.strategy.base import Param, Strategy, signal_frame
from tapeflow.strategy.history import History
from tests.research_kit import path_bars
from tests.universe_kit import store_bundled, store_universe
from tests.warehouse_rows import bars as minute_bars
from warehouse.universes import universes_describing
from warehouse.upsert import upsert

D = [date(2024, 3, d) for d in (4, 5, 6, 7, 8, 11)]  # Mon .. Fri, Mon


def ny(day: date, hh: int = 0) -> datetime:
    return datetime.combine(day, time(hh), NEW_YORK).astimezone(UTC)


class DailyScript(Strategy):
    """Test-only: decisions at the close of session `i` of the history: (i, symbol, enter|exit)."""

    name = "daily_script"
    timeframe = Timeframe.DAY
    params = (Param("qty", int, 0, 0, 1_000_000, "shares; 0: sized by the risk rules", tunable=False),)
    script: ClassVar[list[tuple[int, str, str]]] = [
        (1, "OLD", "enter"),  # a member on Tuesday
        (4, "OLD", "exit"),  # Friday: OLD left on Wednesday, and its position still goes
        (3, "GONE", "enter"),  # left on Tuesday: refused
        (1, "NEW", "enter"),  # joins on Thursday: refused on Tuesday
        (3, "NEW", "enter"),  # taken on Thursday
        (2, "LATE", "enter"),  # a member from Tuesday, but known only on Thursday at noon: refused
        (3, "LATE", "enter"),  # Thursday's close is after noon: taken
    ]

    def signals(self, history: History) -> pl.DataFrame:
        ends = history.bars["end_ts"].unique().sort()
        rows = [{"symbol": symbol, "at": ends[i], "action": action, "reason": f"day {i}"}
                for i, symbol, action in self.script if i < len(ends)]
        return signal_frame(rows)


INTERVALS = [
    ("OLD", D[0], D[2], ny(D[0])),
    ("GONE", D[0], D[1], ny(D[0])),
    ("NEW", D[3], None, ny(D[3])),
    ("LATE", D[1], None, ny(D[3], 12)),
]


def flat_history() -> History:
    return History(bars=pl.concat([path_bars([0.0] * 5, start=D[0], symbol=s) for s in ("OLD", "GONE", "NEW", "LATE")]))


@pytest.fixture
def members(warehouse):
    store_universe(warehouse, "test-pit", INTERVALS, description="four hand-made names", survivorship="point_in_time")
    with warehouse.read() as con:
        return load_membership(con, "test-pit")


def outcomes(decisions: pl.DataFrame) -> dict[tuple[str, int, str], str]:
    """(symbol, session index, action) -> outcome."""
    day = {end: i for i, end in enumerate(flat_history().bars["end_ts"].unique().sort())}
    return {(r["symbol"], day[r["at"]], r["action"]): r["outcome"] for r in decisions.iter_rows(named=True)}


def test_entries_keep_to_the_members_of_the_moment_and_exits_are_always_taken(members):
    run = run_backtest(DailyScript(), flat_history(), members=members)
    got = outcomes(run.result.decisions)
    refused = Outcome.NOT_IN_UNIVERSE.value
    assert refused == "ignored: not in universe"
    assert {k: v for k, v in got.items() if v == refused} == {
        ("GONE", 3, "enter"): refused, ("NEW", 1, "enter"): refused, ("LATE", 2, "enter"): refused}
    assert got[("OLD", 1, "enter")] == got[("OLD", 4, "exit")] == Outcome.PLACED
    assert got[("NEW", 3, "enter")] == got[("LATE", 3, "enter")] == Outcome.PLACED
    fills = run.result.fills.select("symbol", "side", pl.col("ts").dt.convert_time_zone(str(NEW_YORK)).dt.date().alias("day"))
    assert sorted(fills.rows()) == [("LATE", "buy", D[4]), ("NEW", "buy", D[4]), ("OLD", "buy", D[2]), ("OLD", "sell", D[5])]
    assert run.result.decisions["at"].is_sorted() and run.result.decisions.height == len(DailyScript.script)


def test_without_a_universe_nothing_is_refused(members):
    run = run_backtest(DailyScript(), flat_history())
    assert Outcome.NOT_IN_UNIVERSE.value not in run.result.decisions["outcome"].to_list()
    assert run.result.fills.filter(pl.col("side") == "buy")["symbol"].n_unique() == 4
    assert "the universe is the symbols present in the data" in run.assumptions["survivorship"]  # no record: the prose


def test_the_report_states_the_universe_and_its_survivorship_from_the_table(members):
    run = run_backtest(DailyScript(), flat_history(), members=members)
    assert run.assumptions["universe"] == (
        "test-pit: four hand-made names; entries only on symbols that were members at the decision instant")
    assert str(run.assumptions["survivorship"]).startswith("point_in_time (the universes table, for test-pit from test)")


def test_the_bundled_universe_is_stated_as_survivorship_biased(warehouse):
    store_bundled(warehouse)
    with warehouse.read() as con:
        members = load_membership(con, "sp500-2010")
        record = load_universe(con, "sp500-2010")
    history = History(bars=path_bars([0.01, -0.01] * 3, start=date(2010, 3, 1), symbol="AAPL"))
    applied = run_backtest(DailyScript(), history, members=members)
    assert "sp500-2010: S&P 500 members as of a 2010 snapshot (survivorship-biased)" in str(applied.assumptions["universe"])
    assert str(applied.assumptions["survivorship"]).startswith("survivorship_biased")
    described = run_backtest(DailyScript(), history, record=record)  # the data's universe, named but not applied
    assert "membership not applied" in str(described.assumptions["universe"])
    assert "S&P 500 members as of a 2010 snapshot" in str(described.assumptions["universe"])
    assert str(described.assumptions["survivorship"]).startswith("survivorship_biased")


def test_a_universe_describes_data_from_its_source_whose_symbols_it_holds(warehouse):
    store_universe(warehouse, "holds-both", [("AAA", date(2011, 1, 3), None, ny(date(2011, 1, 3))),
                                             ("BBB", date(2011, 1, 3), date(2011, 1, 31), ny(date(2011, 1, 3)))])
    store_universe(warehouse, "other-source", [("AAA", date(2011, 1, 3), None, ny(date(2011, 1, 3)))], source="vendor")
    with warehouse.write() as con:
        for symbol in ("AAA", "BBB", "CCC"):
            upsert(con, "bars", minute_bars(3, symbol=symbol).with_columns(pl.lit(datetime.now(UTC)).alias("ingested_at")),
                   ("symbol", "timeframe", "ts"))
    window = (datetime(2011, 3, 1, tzinfo=UTC), datetime(2011, 3, 2, tzinfo=UTC))
    with warehouse.read() as con:
        assert universes_describing(con, "1m", *window, ["AAA", "BBB"]) == ["holds-both"]
        assert universes_describing(con, "1m", *window, ["AAA"]) == ["holds-both"]  # "other-source" is not the bars' source
        assert universes_describing(con, "1m", *window) == []  # CCC was never a member
