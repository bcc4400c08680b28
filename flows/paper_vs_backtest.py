"""Paper versus backtest: replay each paper session of a day through the backtest engine and
report the gap in fills, slippage and P&L, attributed to its cause (stored in paper_gaps)."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow

from flows.hooks import alert_on_failure
from flows.parameters import UNSET, OptionalCostPreset, OptionalDay, OptionalName, OptionalStrategy
from tapeflow.calendar.exchange import ny_day
from tasks.paper_gap import measure_and_store, publish_gap, sessions_to_compare


@flow(name="paper-vs-backtest", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def paper_vs_backtest(
    session_id: OptionalName = UNSET,
    strategy: OptionalStrategy = UNSET,
    day: OptionalDay = UNSET,
    costs: OptionalCostPreset = UNSET,
) -> list[dict[str, object]]:
    """One session, or every paper session of `day` (default: today in New York), of one
    strategy or all; `costs` is the sim broker's preset (default TAPEFLOW_SIM_COSTS).

    Args:
        session_id: One session to compare (tapeflow sessions lists them); blank means every session of the day.
        strategy: Only this strategy's sessions; blank means all.
        day: New York day; blank means today.
        costs: Cost preset of the backtest it is compared with; blank means TAPEFLOW_SIM_COSTS.
    """
    sessions = [session_id] if session_id else sessions_to_compare(day or ny_day(datetime.now(UTC)), strategy)
    summaries = []
    for sid in sessions:
        report = measure_and_store(sid, costs)
        publish_gap(report)
        summaries.append(report.summary())
    return summaries
