"""A parameter grid scanned symbol by symbol: each symbol is backtested alone (its own account,
the whole starting cash) with every candidate, and candidates are ranked across symbols.

The scan goes out in batches of symbols, and each batch's task loads only its own bars, so no
process holds more than one batch of history at a time: that is what bounds memory when the
symbols run into the thousands. A symbol's result does not depend on the others, so the batch
size changes how the work is split, never the table.

Table (one row per candidate and symbol)
    candidate (its place in the grid's enumeration), params (JSON), symbol, objective (the
    chosen metric, None when undefined, e.g. no trades), total_return, trades, and reason: the
    strategy's refusal of the candidate (then the numbers are None), else None.

Ranking (one row per candidate the strategy accepts)
    median of the objective over the symbols where it is defined, the share of symbols with a
    positive total return, the median total return and the trades; ordered by the median
    objective (undefined last), then the positive share, then the grid's order.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb
import polars as pl

from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.engine import BacktestResult
from tapeflow.backtest.run import Backtest, run_backtest
from tapeflow.calendar.exchange import ny_day_bounds
from tapeflow.research.walkforward import score
from tapeflow.schemas import EQUITY_SCHEMA, FILLS_SCHEMA, SIGNAL_SCHEMA, TRADES_SCHEMA
from tapeflow.strategy.history import History
from warehouse.bars_view import BARS_ALL

TABLE_SCHEMA: dict[str, pl.DataType] = {
    "candidate": pl.Int64(), "params": pl.String(), "symbol": pl.String(), "objective": pl.Float64(),
    "total_return": pl.Float64(), "trades": pl.Int64(), "reason": pl.String(),
}


@dataclass(frozen=True)
class BatchScan:
    """One batch's part of the table, and the symbols whose bars its task loaded."""

    loaded: tuple[str, ...]
    rows: pl.DataFrame


def stored_symbols(con: duckdb.DuckDBPyConnection, timeframe: str, start: date, end: date,
                   symbols: Sequence[str] | None = None) -> list[str]:
    """The symbols (of `symbols`, when given) with `timeframe` bars on New York days start..end, sorted."""
    query = f"SELECT DISTINCT symbol FROM {BARS_ALL} WHERE timeframe = $tf AND ts >= $lo AND ts < $hi"
    params: dict[str, object] = {"tf": timeframe, "lo": ny_day_bounds(start)[0], "hi": ny_day_bounds(end)[1]}
    if symbols:
        query += " AND list_contains($symbols, symbol)"
        params["symbols"] = list(symbols)
    return [symbol for (symbol,) in con.execute(query + " ORDER BY symbol", params).fetchall()]


def batches(symbols: Sequence[str], size: int) -> list[list[str]]:
    """`symbols` in consecutive batches of at most `size`, each symbol once, in order."""
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {size}")
    unique = list(dict.fromkeys(symbols))
    return [unique[i:i + size] for i in range(0, len(unique), size)]


def grid_candidates(grid: Mapping[str, Sequence]) -> list[dict[str, Any]]:
    """Every combination of the grid in enumeration order, the ones the strategy refuses included
    (the scan lists them with the reason)."""
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(list(grid[n]) for n in names))]


def scan_symbols(strategy_cls, history: History, symbols: Sequence[str], candidates: Sequence[Mapping[str, Any]],
                 config: BacktestConfig, objective: str) -> pl.DataFrame:
    """Each symbol of `history` alone with every candidate: the table's rows for these symbols."""
    rows: list[dict[str, Any]] = []
    for order, params in enumerate(candidates):
        try:
            strategy = strategy_cls(**params)
        except ValueError as exc:  # refused: listed with its reason, the scan goes on
            rows += [_row(order, params, symbol, reason=str(exc)) for symbol in symbols]
            continue
        chosen = {name: strategy.p[name] for name in params}  # as the strategy coerced them
        for symbol in symbols:
            metrics = run_backtest(strategy, history.only([symbol]), config).metrics
            if objective not in metrics:
                raise KeyError(f"no metric {objective!r}; compute_metrics gives {', '.join(metrics)}")
            rows.append(_row(order, chosen, symbol, score(metrics, objective), score(metrics, "total_return"),
                             int(metrics.get("trades") or 0)))
    return pl.DataFrame(rows, schema=TABLE_SCHEMA)


def _row(order: int, params: Mapping[str, Any], symbol: str, objective: float | None = None,
         total_return: float | None = None, trades: int | None = None, reason: str | None = None) -> dict[str, Any]:
    return {"candidate": order, "params": json.dumps(dict(params)), "symbol": symbol, "objective": objective,
            "total_return": total_return, "trades": trades, "reason": reason}


def combined(parts: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """The batches' rows as one table, by candidate then symbol (whatever the batches were)."""
    return pl.concat([pl.DataFrame(schema=TABLE_SCHEMA), *parts]).sort("candidate", "symbol")


def ranking(table: pl.DataFrame) -> pl.DataFrame:
    """One row per accepted candidate, best first (see the module docstring)."""
    ran = table.filter(pl.col("reason").is_null())
    ranked = ran.group_by("candidate", "params").agg(
        pl.col("symbol").count().alias("symbols"),
        pl.col("objective").median().alias("median_objective"),
        pl.col("objective").count().alias("scored"),
        (pl.col("total_return").fill_null(0.0) > 0).mean().alias("positive_share"),
        pl.col("total_return").median().alias("median_total_return"),
        pl.col("trades").sum().alias("trades"),
    ).sort(["median_objective", "positive_share", "candidate"], descending=[True, True, False], nulls_last=True)
    return ranked.with_row_index("rank", offset=1).with_columns(pl.col("rank").cast(pl.Int64))


def refusals(table: pl.DataFrame) -> list[str]:
    """Each refused candidate once: its params and the strategy's reason."""
    refused = table.filter(pl.col("reason").is_not_null()).unique("candidate", keep="first").sort("candidate")
    return [f"{params}: {reason}" for params, reason in refused.select("params", "reason").iter_rows()]


def grid_markdown(strategy: str, objective: str, table: pl.DataFrame, ranked: pl.DataFrame, batch_size: int,
                  csv_path: str, top: int = 10) -> str:
    """The scan in a few lines: what ran, the best candidates, the refusals and where the table is."""
    symbols = table["symbol"].n_unique()
    lines = [f"# Parameter grid by symbol: {strategy}", "",
             f"Each of {symbols} symbols backtested alone (its own account) with each of "
             f"{table['candidate'].n_unique()} candidates, in batches of {batch_size} symbols; ranked by the median "
             f"`{objective}` across symbols, then the share of symbols with a positive return.", "",
             f"| rank | params | median {objective} | positive share | median return | symbols | trades |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for row in ranked.head(top).iter_rows(named=True):
        lines.append(f"| {row['rank']} | `{row['params']}` | {_num(row['median_objective'])} | "
                     f"{row['positive_share']:.0%} | {_num(row['median_total_return'])} | {row['symbols']} | {row['trades']} |")
    refused = refusals(table)
    if refused:
        lines += ["", "Refused by the strategy:", *[f"- `{line}`" for line in refused]]
    lines += ["", f"Full table (one row per candidate and symbol): `{csv_path}`"]
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def scan_only(strategy: str, params: Mapping[str, Any], config: BacktestConfig, metrics: Mapping[str, Any]) -> Backtest:
    """The record of a scan too wide to rerun as one portfolio: the best candidate with the scan's
    numbers as its metrics, and no fills or curve (none was simulated across the symbols)."""
    empty = BacktestResult(fills=pl.DataFrame(schema=FILLS_SCHEMA), trades=pl.DataFrame(schema=TRADES_SCHEMA),
                           equity=pl.DataFrame(schema=EQUITY_SCHEMA), decisions=pl.DataFrame(schema=SIGNAL_SCHEMA),
                           config=config, start_cash=config.cash)
    stated = {"per-symbol scan": "each symbol backtested alone (its own account) with every candidate; the metrics are "
                                 "the scan's ranking, not a portfolio's run (too many symbols to hold at once)"}
    return Backtest(strategy, dict(params), empty, dict(metrics), stated)
