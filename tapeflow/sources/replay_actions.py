"""The bundled panel's corporate actions (data/actions/, hand-checked against the panel's
prices; provenance in data/NOTICE), as a raw batch like any vendor's."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from tapeflow.schemas import ACTION_SCHEMA

ACTIONS_FILE = Path("actions/sp500-2010.csv")
SOURCE = "replay"


class ReplayActions:
    """ActionSource over the bundled file; `data_dir` is the project's data/ folder."""

    name = SOURCE

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / ACTIONS_FILE

    def actions(self, symbols: Sequence[str] | None, first: date, last: date) -> pl.DataFrame:
        if not self.path.exists():
            raise FileNotFoundError(f"bundled actions file {self.path} is missing (set TAPEFLOW_DATA_DIR to the project's data/)")
        raw = pl.read_csv(self.path, infer_schema=False)
        day = raw["ex_date"].str.to_date("%Y-%m-%d", strict=False)
        # A row whose date cannot be read stays in: the checks quarantine it with its reason.
        keep = day.is_null() | day.is_between(first, last)
        if symbols is not None:
            keep = keep & raw["symbol"].is_in(list(symbols))
        raw = raw.filter(keep)
        now = datetime.now(UTC)
        return raw.select(
            pl.lit(SOURCE).alias("source"), "symbol", "kind", "ex_date",
            *(pl.col(c).cast(pl.Float64, strict=False) for c in ("ratio", "amount", "price_factor")),
            "new_symbol", "knowable_at",
            pl.lit(now, dtype=ACTION_SCHEMA["fetched_at"]).alias("fetched_at"),
            pl.Series("payload", [json.dumps(r, sort_keys=True) for r in raw.to_dicts()], dtype=pl.String),
            pl.lit(None, dtype=pl.String).alias("problem"),
        )
