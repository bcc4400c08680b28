"""Signals grouped by what they were and what became of them, with the figures kept apart.

An outcome like "ignored: insufficient buying power (4.02)" or a reason like "closed above
the 15-minute opening range high 129.01" carries a number; grouping on the raw text makes one
group per number. The key keeps the words (every number becomes `#`); the figure (the one in
the outcome's brackets, else a number ending the reason) goes to min / median / max columns.
"""

from __future__ import annotations

import polars as pl

_NUMBER = r"[-+]?\$?\d[\d,]*(?:\.\d+)?%?"
_DETAIL = r"\s*\(([^()]*)\)$"


def signal_groups(decisions: pl.DataFrame) -> pl.DataFrame:
    """action, outcome, reason (numbers as #), signals, and min / median / max of the figure."""
    schema = {"action": pl.String, "outcome": pl.String, "reason": pl.String, "signals": pl.UInt32,
              "min": pl.Float64, "median": pl.Float64, "max": pl.Float64}
    if decisions.height == 0 or "outcome" not in decisions.columns:
        return pl.DataFrame(schema=schema)
    outcome, reason = pl.col("outcome").fill_null(""), pl.col("reason").fill_null("")
    detail = outcome.str.extract(_DETAIL).str.extract(f"({_NUMBER})")
    last = reason.str.extract(rf"\s({_NUMBER})$")  # a trailing amount, not the 30 of "SMA30"
    figure = pl.coalesce(_as_number(detail), _as_number(last))
    keyed = decisions.select(
        pl.col("action").fill_null(""),
        outcome.str.replace(_DETAIL, "").str.replace_all(_NUMBER, "#").alias("outcome"),
        reason.str.replace_all(_NUMBER, "#").alias("reason"),
        figure.alias("figure"),
    )
    return keyed.group_by("action", "outcome", "reason").agg(
        pl.len().alias("signals"), pl.col("figure").min().alias("min"), pl.col("figure").median().alias("median"),
        pl.col("figure").max().alias("max"),
    ).sort(["signals", "action", "outcome", "reason"], descending=[True, False, False, False]).cast(schema)  # type: ignore[arg-type]


def _as_number(text: pl.Expr) -> pl.Expr:
    return text.str.replace_all(r"[$,%+]", "").cast(pl.Float64, strict=False)
