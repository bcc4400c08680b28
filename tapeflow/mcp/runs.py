"""`backtest_runs` and `backtest_summary`: stored backtests, walk-forwards and perturbations."""

from __future__ import annotations

import json
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from tapeflow.mcp.reading import Reader
from tapeflow.mcp.records import Record, Rows

_RUNS = """
    SELECT run_id, kind, strategy, timeframe, universe, window_start, window_end, params, metrics, created_at
    FROM backtest_runs
    WHERE parent_run_id IS NULL AND ($strategy IS NULL OR strategy = $strategy)
    ORDER BY created_at DESC, run_id LIMIT $limit + 1
"""
_RUN = "SELECT * EXCLUDE (config) FROM backtest_runs WHERE run_id = $run_id"
_CHILDREN = """
    SELECT run_id, kind, fold, params, window_start, window_end, metrics FROM backtest_runs
    WHERE parent_run_id = $run_id ORDER BY fold NULLS LAST, run_id LIMIT 50
"""
_JSON_COLUMNS = ("params", "metrics", "assumptions", "data_snapshot")


class RunSummary(Record):
    """One run: what it measured, the assumptions behind the numbers, and its folds or neighbours."""

    run: dict[str, Any]
    verdict: str | None  # a perturbation's plateau | spike | no edge | untested, when stored
    children: list[dict[str, Any]]  # walk-forward folds or perturbation neighbours


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    """JSON columns as objects, not strings."""
    return {k: json.loads(v) if k in _JSON_COLUMNS and isinstance(v, str) else v for k, v in row.items()}


def backtest_runs(reader: Reader, strategy: str | None, limit: int) -> Rows:
    """Top-level runs, newest first."""
    rows = [_decoded(r) for r in reader.rows(_RUNS, {"strategy": strategy, "limit": limit})]
    return Rows(rows=rows[:limit], count=min(len(rows), limit), truncated=len(rows) > limit)


def backtest_summary(reader: Reader, run_id: str) -> RunSummary:
    """The run with its metrics, assumptions and children; a ToolError when no such run is stored."""
    found = reader.rows(_RUN, {"run_id": run_id})
    if not found:
        raise ToolError(f"no backtest run {run_id!r}: backtest_runs lists the stored ones")
    run = _decoded(found[0])
    children = [_decoded(r) for r in reader.rows(_CHILDREN, {"run_id": run_id})]
    metrics = run.get("metrics")
    verdict = metrics.get("verdict") if isinstance(metrics, dict) else None
    return RunSummary(run=run, verdict=verdict if isinstance(verdict, str) else None, children=children)


def register(server: MCPServer, reader: Reader) -> None:
    @server.tool(name="backtest_runs", description=(
        "Stored backtest, walk-forward and perturbation runs, newest first, with params and headline metrics; "
        "pass a run_id to backtest_summary for the details."))
    def _backtest_runs(
        strategy: Annotated[str | None, Field(max_length=100, description="a strategy name; default all")] = None,
        limit: Annotated[int, Field(ge=1, le=100)] = 20,
    ) -> Rows:
        return backtest_runs(reader, strategy, limit)

    @server.tool(name="backtest_summary", description=(
        "One run's metrics, stated assumptions (fills, slippage, commissions, universe), data snapshot, and its "
        "walk-forward folds or perturbation neighbours with the verdict when stored."))
    def _backtest_summary(run_id: Annotated[str, Field(min_length=1, max_length=200)]) -> RunSummary:
        return backtest_summary(reader, run_id)
