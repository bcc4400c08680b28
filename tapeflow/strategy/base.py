"""The strategy contract: declared parameters in, causal decisions out.

A strategy gets a `History` (bars and watchlist snapshots) and returns its decisions as a
frame of signals (`SIGNAL_SCHEMA`: one row is one decision, the only decision type), each
stamped with the moment it was taken (`at`). It must use only what
was knowable at `at`; `tapeflow.research.lookahead` checks that by rerunning it on histories cut
short. The same object runs in backtest, paper and live: only the History differs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import polars as pl

from tapeflow.model import Action, OrderType, Timeframe, TimeInForce
from tapeflow.schemas import SIGNAL_SCHEMA
from tapeflow.strategy.history import History

_VOCABULARY: dict[str, tuple[str, ...]] = {
    "action": tuple(Action),
    "order_type": tuple(OrderType),
    "time_in_force": tuple(TimeInForce),
}
"""The enum each string column of a signal frame is spelled in."""


_DEFAULTS: dict[str, Any] = {"qty": None, "order_type": OrderType.MARKET.value, "time_in_force": TimeInForce.DAY.value,
                             "limit_price": None, "stop_price": None, "reason": ""}


def signal_frame(rows: list[dict[str, Any]] | pl.DataFrame) -> pl.DataFrame:
    """Rows (dicts, or a frame with some of the columns) in SIGNAL_SCHEMA with defaults filled;
    ValueError for an action, order type or time in force that is not a member of its enum."""
    if isinstance(rows, pl.DataFrame):
        frame = rows.with_columns(pl.lit(value, dtype=SIGNAL_SCHEMA[name]).alias(name)
                                  for name, value in _DEFAULTS.items() if name not in rows.columns)
    else:  # each row in the schema's order, so the frame is built in its types at once (a cycle a minute, each)
        frame = pl.DataFrame([{c: row.get(c, _DEFAULTS.get(c)) for c in SIGNAL_SCHEMA} for row in rows],
                             schema_overrides=SIGNAL_SCHEMA)
    if frame.is_empty():
        return pl.DataFrame(schema=SIGNAL_SCHEMA)
    if frame.schema != SIGNAL_SCHEMA:
        frame = frame.select(pl.col(c).cast(t) for c, t in SIGNAL_SCHEMA.items())
    _check_vocabulary(frame)
    return frame.sort("at", "symbol")


def _check_vocabulary(frame: pl.DataFrame) -> None:
    # The engine reads every action but "enter" as an exit: a "buy" must fail here, not trade.
    for column, allowed in _VOCABULARY.items():
        if set(frame[column].unique().to_list()) <= set(allowed):  # the common case, one cheap pass
            continue
        bad = frame.filter(pl.col(column).is_null() | ~pl.col(column).is_in(allowed))
        if bad.height:
            row = bad.row(0, named=True)
            more = f" (and {bad.height - 1} more rows)" if bad.height > 1 else ""
            raise ValueError(f"signal {column} must be one of {', '.join(allowed)}, got {row[column]!r} "
                             f"for {row['symbol']} at {row['at']}{more}")


@dataclass(frozen=True)
class Param:
    """One tunable parameter: its type, default and the range it may take."""

    name: str
    kind: type
    default: int | float
    low: int | float
    high: int | float
    doc: str
    tunable: bool = True  # False for sizing knobs: walk-forward and perturbation leave them alone

    def coerce(self, value: Any) -> int | float:
        """`value` as this parameter's type, or ValueError naming the allowed range."""
        try:
            number = self.kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} must be {self.kind.__name__}, got {value!r}") from None
        if self.kind is int and float(value) != number:
            raise ValueError(f"{self.name} must be a whole number, got {value!r}")
        if not self.low <= number <= self.high:
            raise ValueError(f"{self.name} must be within {self.low}..{self.high}, got {number}")
        return number


class Strategy(ABC):
    """Subclasses set `name`, `timeframe`, `params` and implement `signals`."""

    name: ClassVar[str]
    timeframe: ClassVar[Timeframe]
    params: ClassVar[tuple[Param, ...]]
    uses_watchlist: ClassVar[bool] = False
    uses_news: ClassVar[bool] = False  # gets scored headlines in History.news (tapeflow/news/features.py)
    # True: a symbol's decisions depend on its own records only (no ranking across names), so a
    # backtest may decide for each symbol apart (tapeflow/backtest/adjust.py); the suite checks it.
    per_symbol: ClassVar[bool] = False

    def __init__(self, **overrides: Any) -> None:
        known = {p.name: p for p in self.params}
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ValueError(f"{self.name} has no parameter {', '.join(unknown)}; it has {', '.join(known)}")
        self.p: Mapping[str, int | float] = {
            name: param.coerce(overrides.get(name, param.default)) for name, param in known.items()
        }
        self.check_params()

    def check_params(self) -> None:
        """Rules between parameters (e.g. fast < slow); raise ValueError."""

    def warmup_bars(self) -> int:
        """Bars of its timeframe, before the one it decides on, that a decision needs (e.g. a
        30-bar average compared with the bar before: 30). Sessions load this much history
        and refuse to start without it; backtests take no decision before it. Intraday
        strategies that look only at the current session declare 0."""
        return 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.p.items())})"

    @abstractmethod
    def signals(self, history: History) -> pl.DataFrame:
        """Every decision over the whole history, in SIGNAL_SCHEMA, each using only what was
        knowable at its `at`."""
