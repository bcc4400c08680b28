"""The strategy contract: declared parameters in, causal decisions out.

A strategy gets a `History` (bars and watchlist snapshots) and returns its decisions as a
frame of signals, each stamped with the moment it was taken (`at`). It must use only what
was knowable at `at`; `tapeflow.research.lookahead` checks that by rerunning it on histories cut
short. The same object runs in backtest, paper and live: only the History differs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import polars as pl

from tapeflow.model import Action, OrderType, Signal, Timeframe, TimeInForce
from tapeflow.schemas import SIGNAL_SCHEMA, UTC_TS
from tapeflow.strategy.history import History


def signal_frame(rows: list[dict[str, Any]] | pl.DataFrame) -> pl.DataFrame:
    """Rows (dicts, or a frame with some of the columns) in SIGNAL_SCHEMA with defaults filled."""
    frame = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(rows, schema_overrides={"at": UTC_TS})
    defaults = {"qty": None, "order_type": OrderType.MARKET.value, "time_in_force": TimeInForce.DAY.value,
                "limit_price": None, "stop_price": None, "reason": ""}
    frame = frame.with_columns(
        pl.lit(value, dtype=SIGNAL_SCHEMA[name]).alias(name) for name, value in defaults.items() if name not in frame.columns
    )
    if frame.is_empty():
        return pl.DataFrame(schema=SIGNAL_SCHEMA)
    return frame.select(pl.col(c).cast(t) for c, t in SIGNAL_SCHEMA.items()).sort("at", "symbol")


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

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.p.items())})"

    @abstractmethod
    def signals(self, history: History) -> pl.DataFrame:
        """Every decision over the whole history, in SIGNAL_SCHEMA, each using only what was
        knowable at its `at`."""

    def decide(self, history: History, at: datetime) -> list[Signal]:
        """The decisions at `at`, seeing only what was knowable then (the live path)."""
        frame = self.signals(history.until(at)).filter(pl.col("at") == at)
        return [
            Signal(
                strategy=self.name, symbol=row["symbol"], at=row["at"], action=Action(row["action"]),
                reason=row["reason"], target_qty=row["qty"], order_type=OrderType(row["order_type"]),
                time_in_force=TimeInForce(row["time_in_force"]), limit_price=row["limit_price"],
                stop_price=row["stop_price"],
            )
            for row in frame.iter_rows(named=True)
        ]
