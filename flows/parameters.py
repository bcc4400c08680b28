"""Flow parameters as types the run form can show: names as choices, strategy parameters as
fields with their ranges, and optional values without a "None" variant. Prefect refuses any
other value when a run is created, before anything runs."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, GetCoreSchemaHandler, GetJsonSchemaHandler, WithJsonSchema
from pydantic.json_schema import PydanticJsonSchemaWarning
from pydantic_core import core_schema

from tapeflow.backtest.costs import PRESETS
from tapeflow.backtest.metrics import Metrics
from tapeflow.news import NEWS_SOURCE_NAMES
from tapeflow.sources import SOURCE_NAMES, WATCHLIST_SOURCE_NAMES
from tapeflow.strategy.base import Param
from tapeflow.strategy.registry import available
from tapeflow.venues.configured import ACTION_SOURCES


class OneOf:
    """A name from a list that can grow while a process lives (strategies found on
    TAPEFLOW_STRATEGY_PATH): checked against the list when a run is validated, offered as the
    list's choices when a deployment's schema is built."""

    def __init__(self, what: str, names: Callable[[], Iterable[str]], *, blank: bool = False) -> None:
        self.what, self.names, self.blank = what, names, blank

    def check(self, value: str) -> str:
        known = list(self.names())
        if value not in known:
            raise ValueError(f"unknown {self.what} {value!r}; known: {', '.join(known)}")
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        name = core_schema.no_info_after_validator_function(self.check, core_schema.str_schema())
        if not self.blank:
            return name
        return core_schema.no_info_before_validator_function(_blank_is_none, core_schema.nullable_schema(name))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        # Blank is "not set": the form shows the choices alone, with no "None" variant.
        return {"type": "string", "enum": list(self.names())}


StrategyName = Annotated[str, OneOf("strategy", lambda: available())]
CostPreset = Literal[tuple(PRESETS)]  # type: ignore[valid-type]
MarketDataName = Literal[SOURCE_NAMES]  # type: ignore[valid-type]
WatchlistName = Literal[WATCHLIST_SOURCE_NAMES]  # type: ignore[valid-type]
NewsName = Literal[NEWS_SOURCE_NAMES]  # type: ignore[valid-type]
ActionSourceName = Literal[tuple(ACTION_SOURCES)]  # type: ignore[valid-type]
Objective = Literal[tuple(f.name for f in dataclasses.fields(Metrics))]  # type: ignore[valid-type]


class Unset:
    """The default of an optional parameter: "not set", which the flow receives as None. Unlike
    None it has no JSON form, so pydantic leaves it out of the deployment's schema and the run
    form shows the field empty, instead of a null default that the form's own check refuses."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = Unset()
# The one warning pydantic gives for that, on every schema build: expected, so not shown.
warnings.filterwarnings("ignore", message="Default value UNSET is not JSON serializable", category=PydanticJsonSchemaWarning)


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, Unset) or value in (None, "", [], (), {}, 0) else value


def _optional(shown_as: dict[str, Any]) -> tuple[BeforeValidator, WithJsonSchema]:
    """An optional value the form shows as a plain field: blank (or 0) means "not set", so the
    form needs no "None" variant next to it (Prefect draws one for every `X | None`)."""
    return BeforeValidator(_blank_is_none), WithJsonSchema(shown_as)


def optional_choice(what: str, names: Callable[[], Iterable[str]]) -> Any:
    """A name from `names`, or blank for "not set"."""
    return Annotated[str | None, OneOf(what, names, blank=True)]


OffAtZero = Annotated[float | None, *_optional({"type": "number", "minimum": 0})]
AllAtZero = Annotated[int | None, *_optional({"type": "integer", "minimum": 0})]
Symbols = Annotated[list[str] | None, *_optional({"type": "array", "items": {"type": "string"}})]
OptionalName = Annotated[str | None, *_optional({"type": "string"})]
OptionalDay = Annotated[date | None, *_optional({"type": "string", "format": "date"})]
OptionalTime = Annotated[datetime | None, *_optional({"type": "string", "format": "date-time"})]
OptionalWatchlist = optional_choice("watchlist source", lambda: WATCHLIST_SOURCE_NAMES)
OptionalMarketData = optional_choice("market data source", lambda: SOURCE_NAMES)
OptionalNews = optional_choice("news source", lambda: NEWS_SOURCE_NAMES)
OptionalStrategy = optional_choice("strategy", lambda: available())
OptionalCostPreset = optional_choice("cost preset", lambda: PRESETS)


def _param_uses() -> dict[str, list[tuple[str, Param]]]:
    """Each parameter name of the registered strategies, with the strategies that read it."""
    uses: dict[str, list[tuple[str, Param]]] = {}
    for strategy_name, cls in sorted(available().items()):
        for param in cls.params:
            uses.setdefault(param.name, []).append((strategy_name, param))
    return uses


def _param_field(name: str, uses: list[tuple[str, Param]]) -> dict[str, Any]:
    return {"type": "integer" if all(p.kind is int for _, p in uses) else "number", "title": name,
            "description": "; ".join(f"{s}: {p.doc} ({p.low}..{p.high}, default {p.default})" for s, p in uses),
            "minimum": min(p.low for _, p in uses), "maximum": max(p.high for _, p in uses)}


class StrategyParams:
    """Strategy parameters by name. The run form shows one field per parameter name of the
    strategies registered when its schema is built (TAPEFLOW_STRATEGY_PATH can add some while
    a process lives), each saying which strategy reads it and its range; a name no registered
    strategy has is refused, and the strategy checks its own range when it is built."""

    def __init__(self, values: Mapping[str, float]) -> None:
        self._values = dict(values)

    def values(self) -> dict[str, float]:
        """The parameters that were set, for the strategy's constructor."""
        return dict(self._values)

    @classmethod
    def check(cls, value: Any) -> StrategyParams:
        if value is None or isinstance(value, Unset):
            return cls({})
        if isinstance(value, StrategyParams):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"params must map parameter names to numbers, got {value!r}")
        known = _param_uses()
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown strategy parameter {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}")
        for name, number in value.items():
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise ValueError(f"{name} must be a number, got {number!r}")
        return cls(value)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.check, serialization=core_schema.plain_serializer_function_ser_schema(lambda p: p.values()))

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        # No default on a field: a blank one is left out of the run's parameters.
        return {"type": "object", "title": "StrategyParams", "additionalProperties": False,
                "properties": {name: _param_field(name, uses) for name, uses in sorted(_param_uses().items())}}



def _grid_schema() -> dict[str, Any]:
    names = sorted({p.name for cls in available().values() for p in cls.params})
    return {"type": "object", "propertyNames": {"enum": names},
            "additionalProperties": {"type": "array", "items": {"type": "number"}}}


ParamGrid = Annotated[dict[str, list[float]] | None, BeforeValidator(_blank_is_none), WithJsonSchema(_grid_schema())]
