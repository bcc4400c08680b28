"""Metric values as text with their units, by the metric's name: 12.34%, $1,234.50, 57 days.

Names are split into lowercase words and the first rule with a matching word wins: counts
(days, trades, bars ...) are whole numbers followed by their unit, ratios have 2 decimals
(turnover with a x), returns, drawdowns, volatility, exposure, rates, alpha and `pct` hold
fractions and show as percentages (0.1234 -> 12.34%), basis points as bps, money (equity,
cash, P&L, costs, fees ...) with 2 decimals and a $. A value given as a string is shown as it
is. Light on purpose (no matplotlib): summaries and artifacts format metrics without a report.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta

import numpy as np

from tapeflow.calendar.exchange import NEW_YORK

# Count words and the unit each shows with, in order of preference within a name.
_COUNT_UNITS = (("trades", "trades"), ("fills", "fills"), ("orders", "orders"), ("signals", "signals"),
                ("positions", "positions"), ("bars", "bars"), ("sessions", "sessions"), ("days", "days"),
                ("duration", "days"), ("months", "months"), ("years", "years"), ("periods", "periods"),
                ("streak", "trades"), ("count", ""), ("n", ""), ("num", ""), ("number", ""))
_COUNT_WORDS = {word for word, _ in _COUNT_UNITS}
_RATIO_WORDS = {"ratio", "factor", "sharpe", "sortino", "calmar", "beta", "multiple", "turnover", "skew", "kurtosis"}
_FRACTION_WORDS = {"return", "returns", "cagr", "drawdown", "dd", "volatility", "vol", "exposure", "rate", "pct",
                   "percent", "fraction", "alpha"}
_BPS_WORDS = {"bps", "bp"}  # basis points: before money, so that slippage_bps is not shown in dollars
_MONEY_WORDS = {"equity", "cash", "pnl", "profit", "loss", "gain", "cost", "costs", "commission",
                "commissions", "fee", "fees", "slippage", "capital", "value", "usd", "dollars", "expectancy",
                "win", "balance", "notional"}


def _words(name: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return {w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w}


def metric_kind(name: str) -> str:
    """How a metric named `name` is shown: 'count', 'ratio', 'fraction', 'bps', 'money' or 'number'."""
    words = _words(name)
    if "%" in name:
        return "fraction"
    for kind, vocabulary in (("count", _COUNT_WORDS), ("ratio", _RATIO_WORDS), ("fraction", _FRACTION_WORDS),
                             ("bps", _BPS_WORDS), ("money", _MONEY_WORDS)):
        if words & vocabulary:
            return kind
    return "number"


def count_unit(name: str, value: float) -> str:
    """The unit a count named `name` is shown with ('' when the name says none), singular for 1."""
    words = _words(name)
    unit = next((u for word, u in _COUNT_UNITS if word in words), "")
    return unit[:-1] if unit and value == 1 else unit


def money(value: float) -> str:
    """Dollars with cents: -$1,234.57."""
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def when(value: datetime) -> str:
    """An instant in New York time, to the minute."""
    if value.tzinfo is not None:
        value = value.astimezone(NEW_YORK)
    return value.strftime("%Y-%m-%d %H:%M")


def held_for(value: timedelta | None) -> str:
    """A holding time in the unit that reads best: 45 min, 3.2 h, 12.5 days."""
    if value is None:
        return "—"
    seconds = value.total_seconds()
    if seconds < 3600:
        return f"{seconds / 60:,.0f} min"
    if seconds < 86_400:
        return f"{seconds / 3600:,.1f} h"
    return f"{seconds / 86_400:,.1f} days"


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.4g}"


def format_metric(name: str, value: object) -> str:
    """A metric value as text with its unit: fractions as %, money with 2 decimals, counts whole."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return held_for(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
        if math.isnan(number):
            return "n/a"
        if math.isinf(number):
            return "∞" if number > 0 else "-∞"
        kind = metric_kind(name)
        if kind == "fraction":
            return f"{number * 100:,.2f}%"
        if kind == "money":
            return money(number)
        if kind == "bps":
            return f"{number:,.2f} bps"
        if kind == "count" and number.is_integer():
            unit = count_unit(name, number)
            return f"{int(number):,}" + (f" {unit}" if unit else "")
        if isinstance(value, (int, np.integer)):
            return f"{int(value):,}"
        if kind == "ratio":
            return f"{number:,.2f}" + ("×" if "turnover" in _words(name) else "")
        return _number(number)
    return str(value)


def headline_pairs(metrics: Mapping[str, object]) -> list[tuple[str, str]]:
    """(name, formatted value with its unit) for every metric, in the given order: what a
    report's headline table, a Prefect table artifact or a summary shows."""
    return [(str(name), format_metric(str(name), value)) for name, value in metrics.items()]
