"""The universe files under data/universes/ (provenance in data/NOTICE), read as raw text batches,
and how the bundled panel's file was derived from the panel.

`universes.csv` holds one record a universe (universe, description, survivorship, source);
`<universe>.csv` holds its members (universe, symbol, from_date, to_date, knowable_at, source).
Regenerate the panel's file with `python -m tapeflow.sources.universe_files data`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.sources.replay import DAILY_FILE
from tapeflow.sources.replay import SOURCE as REPLAY

UNIVERSE_DIR = Path("universes")
RECORDS_FILE = "universes.csv"
RECORD_COLUMNS = ("universe", "description", "survivorship", "source")
MEMBER_FILE_COLUMNS = ("universe", "symbol", "from_date", "to_date", "knowable_at", "source")

PANEL_UNIVERSE = "sp500-2010"
PANEL_RECORD = {
    "universe": PANEL_UNIVERSE,
    "description": "S&P 500 members as of a 2010 snapshot (survivorship-biased)",
    "survivorship": "survivorship_biased",
    "source": REPLAY,
}


def read_universe_files(folder: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every record of `folder`/universes.csv and the member rows of each universe's own file,
    all columns as text (the checks in tapeflow/ingest/universe.py parse them)."""
    path = Path(folder) / RECORDS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no universe records at {path}: expected {RECORDS_FILE} with columns {', '.join(RECORD_COLUMNS)}")
    records = pl.read_csv(path, infer_schema=False)
    missing = [c for c in RECORD_COLUMNS if c not in records.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}")
    frames = []
    for name in records["universe"].drop_nulls().unique(maintain_order=True).to_list():
        members = Path(folder) / f"{name}.csv"
        if members.is_file():  # a record without its file stores no members; the check says so
            frames.append(pl.read_csv(members, infer_schema=False))
    empty = pl.DataFrame(schema=dict.fromkeys(MEMBER_FILE_COLUMNS, pl.String))
    return records.select(RECORD_COLUMNS), pl.concat([empty, *frames], how="diagonal_relaxed")


def panel_members(data_dir: Path) -> pl.DataFrame:
    """The panel's members as the file can tell them: every symbol from its first date in the
    panel, knowable from the start of that New York day; no removals (to_date left empty)."""
    raw = pl.read_csv(Path(data_dir) / DAILY_FILE, infer_schema=False, columns=["Date", "Symbol"])
    first = raw.group_by("Symbol").agg(pl.col("Date").str.to_date("%Y%m%d").min().alias("from_date")).sort("Symbol")
    return first.select(
        pl.lit(PANEL_UNIVERSE).alias("universe"),
        pl.col("Symbol").alias("symbol"),
        pl.col("from_date").dt.to_string("%Y-%m-%d"),
        pl.lit(None, dtype=pl.String).alias("to_date"),
        pl.col("from_date").cast(pl.Datetime("us")).dt.replace_time_zone(str(NEW_YORK))
        .dt.to_string("%Y-%m-%dT%H:%M:%S%:z").alias("knowable_at"),
        pl.lit(REPLAY).alias("source"),
    )


def write_panel_universe(data_dir: Path) -> Path:
    """Write universes.csv and the panel's members file under `data_dir`/universes/."""
    folder = Path(data_dir) / UNIVERSE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    pl.DataFrame([PANEL_RECORD]).write_csv(folder / RECORDS_FILE)
    path = folder / f"{PANEL_UNIVERSE}.csv"
    panel_members(data_dir).write_csv(path)
    return path


if __name__ == "__main__":  # python -m tapeflow.sources.universe_files DATA_DIR
    print(write_panel_universe(Path(sys.argv[1] if len(sys.argv) > 1 else "data")))
