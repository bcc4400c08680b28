"""Recording backtest runs in the warehouse: the run, its fills, trades and equity curve."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import polars as pl

from tapeflow import __version__
from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.engine import BacktestResult
from tapeflow.backtest.run import Backtest
from tapeflow.config import PROJECT_DIR
from tapeflow.model import Mode, OrderStatus, OrderType, TimeInForce
from tapeflow.schemas import EQUITY_SCHEMA, FILLS_SCHEMA, TRADES_SCHEMA, conform
from warehouse import Warehouse
from warehouse.upsert import upsert


@lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit the code runs from (`-dirty` with local changes), else the package version."""
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return f"tapeflow {__version__}"
    return described.stdout.strip() if described.returncode == 0 and described.stdout.strip() else f"tapeflow {__version__}"


@dataclass(frozen=True)
class RunRows:
    """One run as the rows the warehouse keeps, table by table: what a compute machine hands back."""

    run_id: str
    tables: dict[str, pl.DataFrame]


RUN_TABLES = ("backtest_runs", "backtest_fills", "backtest_trades", "backtest_equity", "fills", "orders")
"""The tables a run writes, in the order they are written."""
_KEYS = {"backtest_runs": ("run_id",), "backtest_fills": ("run_id", "seq"), "backtest_trades": ("run_id", "seq"),
         "backtest_equity": ("run_id", "ts"), "fills": ("broker", "fill_id"), "orders": ("client_order_id",)}


def run_rows(
    run_id: str,
    backtest: Backtest,
    *,
    kind: str,
    timeframe: str,
    window: tuple[datetime, datetime] | None,
    data_snapshot: dict[str, object],
    parent_run_id: str | None = None,
    fold: int | None = None,
    report_path: str | None = None,
) -> RunRows:
    """The rows one run writes: its record, fills, trades, equity curve and ledger rows."""
    result = backtest.result
    run = pl.DataFrame([{
        "run_id": run_id, "kind": kind, "parent_run_id": parent_run_id, "strategy": backtest.strategy,
        "params": json.dumps(backtest.params), "universe": str(backtest.assumptions.get("universe", "")),
        "timeframe": timeframe, "window_start": window[0] if window else None, "window_end": window[1] if window else None,
        "fold": fold, "config": json.dumps(result.config.describe(), default=str),
        "assumptions": json.dumps(backtest.assumptions, default=str), "data_snapshot": json.dumps(data_snapshot, default=str),
        "code_version": code_version(), "metrics": json.dumps(backtest.metrics, default=str), "report_path": report_path,
        "created_at": datetime.now(UTC),
    }], schema_overrides={"window_start": pl.Datetime("us", "UTC"), "window_end": pl.Datetime("us", "UTC"),
                          "fold": pl.Int32, "parent_run_id": pl.String, "report_path": pl.String})
    with_id = lambda frame: frame.with_row_index("seq").with_columns(pl.lit(run_id).alias("run_id"))  # noqa: E731
    tables = {"backtest_runs": run}
    if result.fills.height:
        tables["backtest_fills"] = with_id(conform(result.fills, FILLS_SCHEMA)).with_columns(pl.col("seq").cast(pl.Int32))
    if result.trades.height:
        tables["backtest_trades"] = with_id(conform(result.trades, TRADES_SCHEMA)).with_columns(pl.col("seq").cast(pl.Int32))
    if result.equity.height:
        tables["backtest_equity"] = conform(result.equity, EQUITY_SCHEMA).with_columns(pl.lit(run_id).alias("run_id"))
    if result.fills.height:
        tables.update(_ledger_rows(run_id, backtest))
    return RunRows(run_id, tables)


def store_runs(warehouse: Warehouse, runs: Sequence[RunRows]) -> None:
    """Write runs and their detail in one transaction; writing a run again replaces it."""
    with warehouse.write() as con:
        for run in runs:
            for table in ("backtest_fills", "backtest_trades", "backtest_equity"):
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run.run_id])
            prefix = f"{run.run_id}:"
            con.execute("DELETE FROM fills WHERE broker = 'backtest' AND starts_with(fill_id, ?)", [prefix])
            con.execute("DELETE FROM orders WHERE broker = 'backtest' AND starts_with(client_order_id, ?)", [prefix])
            for table in RUN_TABLES:
                if table in run.tables:
                    upsert(con, table, run.tables[table], _KEYS[table])


def store_run(warehouse: Warehouse, run_id: str, backtest: Backtest, **described: Any) -> None:
    """Write one run (see run_rows for what describes it) and its detail in a transaction."""
    store_runs(warehouse, [run_rows(run_id, backtest, **described)])


def _ledger_rows(run_id: str, backtest: Backtest) -> dict[str, pl.DataFrame]:
    """The run's orders and fills also go to the `orders` and `fills` tables every mode shares
    (mode backtest, broker backtest, ids prefixed with the run id), so paper and backtest
    executions can be queried side by side."""
    prefix = f"{run_id}:"
    fills = backtest.result.fills
    now = datetime.now(UTC)
    rows = fills.with_row_index("seq").select(
        pl.lit("backtest").alias("broker"), (prefix + pl.col("seq").cast(pl.String)).alias("fill_id"),
        pl.lit(Mode.BACKTEST.value).alias("mode"), (prefix + pl.col("order_id")).alias("client_order_id"), "symbol", "side", "ts",
        "qty", "price", (pl.col("commission") + pl.col("fees")).alias("commission"), pl.lit(False).alias("adopted"),
        pl.lit(now, dtype=pl.Datetime("us", "UTC")).alias("recorded_at"),
    )
    # Order types come from the decision that placed each order (ids: symbol-at-action[-n]);
    # the engine's own stop-loss legs (-stop) are GTC stops.
    decisions = backtest.result.decisions
    placed = (decisions.select(pl.format("{}-{}-{}", "symbol", pl.col("at").dt.epoch("us"), "action").alias("_base"),
                               "order_type", "time_in_force").unique("_base", keep="first")
              if decisions.height else pl.DataFrame(schema={"_base": pl.String, "order_type": pl.String,
                                                             "time_in_force": pl.String}))
    stop_leg = pl.col("order_id").str.contains(r"-stop(-\d+)?$")
    orders = fills.group_by("order_id", maintain_order=True).agg(
        pl.col("symbol").first(), pl.col("side").first(), pl.col("qty").sum(),
        ((pl.col("qty") * pl.col("price")).sum() / pl.col("qty").sum()).alias("avg_fill_price"),
        pl.col("ts").first().alias("created_at"), pl.col("ts").last().alias("updated_at"),
    ).with_columns(pl.col("order_id").str.replace(r"-\d+$", "").alias("_base")).join(placed, on="_base", how="left").select(
        (prefix + pl.col("order_id")).alias("client_order_id"), pl.lit(Mode.BACKTEST.value).alias("mode"),
        pl.lit("backtest").alias("broker"), pl.lit(backtest.strategy).alias("strategy"), "symbol", "side", "qty",
        pl.when(stop_leg).then(pl.lit(OrderType.STOP.value))
        .otherwise(pl.col("order_type").fill_null(OrderType.MARKET.value)).alias("order_type"),
        pl.when(stop_leg).then(pl.lit(TimeInForce.GTC.value))
        .otherwise(pl.col("time_in_force").fill_null(TimeInForce.DAY.value)).alias("time_in_force"),
        pl.lit(OrderStatus.FILLED.value).alias("status"), pl.col("qty").alias("filled_qty"), "avg_fill_price",
        pl.lit("").alias("reason"), "created_at", "updated_at",
    )
    return {"fills": rows, "orders": orders}


def load_run(warehouse: Warehouse, run_id: str) -> tuple[dict[str, object], Backtest]:
    """A recorded run back from the warehouse: its row, and a Backtest to re-render a report."""

    with warehouse.read() as con:
        rows = con.sql("SELECT * FROM backtest_runs WHERE run_id = $id", params={"id": run_id}).pl()
        if rows.is_empty():
            raise LookupError(f"no backtest run {run_id!r}; list them with: "
                              "tapeflow sql \"SELECT run_id, strategy, created_at FROM backtest_runs\"")
        detail = {
            table: con.sql(f"SELECT * EXCLUDE (run_id) FROM {table} WHERE run_id = $id ORDER BY 1", params={"id": run_id}).pl()
            for table in ("backtest_fills", "backtest_trades", "backtest_equity")
        }
    run = rows.row(0, named=True)
    config = json.loads(run["config"])
    result = BacktestResult(
        fills=conform(detail["backtest_fills"], FILLS_SCHEMA), trades=conform(detail["backtest_trades"], TRADES_SCHEMA),
        equity=conform(detail["backtest_equity"], EQUITY_SCHEMA), decisions=pl.DataFrame(), config=BacktestConfig(cash=config["cash"]),
        start_cash=config["cash"],
    )
    backtest = Backtest(run["strategy"], json.loads(run["params"]), result, json.loads(run["metrics"]), json.loads(run["assumptions"]))
    return run, backtest
