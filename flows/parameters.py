"""Flow parameters that name something, as types: Prefect shows each as a choice in the run
form and refuses any other value when a run is created, before anything runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import core_schema

from tapeflow.backtest.costs import PRESETS
from tapeflow.backtest.metrics import Metrics
from tapeflow.news import NEWS_SOURCE_NAMES
from tapeflow.sources import SOURCE_NAMES, WATCHLIST_SOURCE_NAMES
from tapeflow.strategy.registry import available
from tapeflow.venues.configured import ACTION_SOURCES


class OneOf:
    """A name from a list that can grow while a process lives (strategies found on
    TAPEFLOW_STRATEGY_PATH): checked against the list when a run is validated, offered as the
    list's choices when a deployment's schema is built."""

    def __init__(self, what: str, names: Callable[[], Iterable[str]]) -> None:
        self.what, self.names = what, names

    def check(self, value: str) -> str:
        known = list(self.names())
        if value not in known:
            raise ValueError(f"unknown {self.what} {value!r}; known: {', '.join(known)}")
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, core_schema.str_schema())

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return {**handler(schema), "enum": list(self.names())}


StrategyName = Annotated[str, OneOf("strategy", lambda: available())]
CostPreset = Literal[tuple(PRESETS)]  # type: ignore[valid-type]
MarketDataName = Literal[SOURCE_NAMES]  # type: ignore[valid-type]
WatchlistName = Literal[WATCHLIST_SOURCE_NAMES]  # type: ignore[valid-type]
NewsName = Literal[NEWS_SOURCE_NAMES]  # type: ignore[valid-type]
ActionSourceName = Literal[tuple(ACTION_SOURCES)]  # type: ignore[valid-type]
Objective = Literal[tuple(f.name for f in dataclasses.fields(Metrics))]  # type: ignore[valid-type]
