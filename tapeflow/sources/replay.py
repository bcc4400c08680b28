"""Replay of the real sample data bundled in data/ (provenance in data/NOTICE).

Daily: the 524-symbol S&P 500 panel, 2009-08-21 .. 2010-08-20. Minute: SPY, January and
March 2011, with pre-market and after-hours. Both come out as raw bar batches with correct
bar start / end instants, so replayed data is causally identical to a live feed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import polars as pl

from tapeflow.calendar.exchange import ExchangeCalendar, get_calendar
from tapeflow.model import Adjustment, Timeframe
from tapeflow.schemas import RAW_COLUMNS, UTC_TS
from tapeflow.sources.base import Window, daily_bounds

DAILY_FILE = Path("daily/SP500_ind.csv.gz")
MINUTE_FILES = (Path("intraday/nt-spy-minute-2011.csv"), Path("intraday/nt-spy-minute-2011-03.csv"))
MINUTE_SYMBOL = "SPY"
# The daily file stores volume in hundreds of shares in an int32, so it saturates here.
VOLUME_CEILING = 21_474_836
SOURCE = "replay"
# The New York days the bundled files cover, by timeframe: the commands' default window.
BUNDLED_DAYS: dict[Timeframe, tuple[date, date]] = {
    Timeframe.DAY: (date(2009, 8, 21), date(2010, 8, 20)),
    Timeframe.MINUTE: (date(2011, 1, 3), date(2011, 3, 31)),
}


class ReplaySource:
    """MarketData over the bundled files; `data_dir` is the project's data/ folder."""

    name = SOURCE

    def __init__(self, data_dir: Path, calendar: ExchangeCalendar | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.calendar = calendar or get_calendar()

    def bars(self, symbols: Sequence[str] | None, timeframe: Timeframe, window: Window) -> pl.DataFrame:
        timeframe = Timeframe(timeframe)
        frame = self._daily() if timeframe is Timeframe.DAY else self._minute()
        # Filtering happens on the parsed instants; rows the file could not date stay in,
        # so that they reach the quarantine instead of vanishing.
        in_window = pl.col("ts").is_between(window.start, window.end, closed="left") | pl.col("ts").is_null()
        if symbols is not None:
            frame = frame.filter(pl.col("symbol").is_in(list(symbols)))
        return frame.filter(in_window).select(*RAW_COLUMNS, "problem")

    def symbols(self, timeframe: Timeframe) -> list[str]:
        """Every symbol the bundled data has for `timeframe`."""
        if Timeframe(timeframe) is Timeframe.MINUTE:
            return [MINUTE_SYMBOL]
        return sorted(self._read_daily()["Symbol"].unique().to_list())

    def _path(self, relative: Path) -> Path:
        path = self.data_dir / relative
        if not path.exists():
            raise FileNotFoundError(f"replay data file {path} is missing (set TAPEFLOW_DATA_DIR to the project's data/)")
        return path

    def _read_daily(self) -> pl.DataFrame:
        return pl.read_csv(self._path(DAILY_FILE), infer_schema=False)

    def _daily(self) -> pl.DataFrame:
        raw = self._read_daily()
        dates = raw["Date"].str.to_date("%Y%m%d", strict=False)
        bounds = daily_bounds(dates, self.calendar)
        volume = raw["Volume"].cast(pl.Float64, strict=False)
        problem = (
            pl.when(dates.is_null())
            .then(pl.concat_str(pl.lit("Date "), pl.col("Date"), pl.lit(" is not a yyyymmdd date")))
            .when(bounds["problem"].is_not_null())
            .then(pl.concat_str(pl.lit("Date "), pl.col("Date"), pl.lit(": "), bounds["problem"]))
            .when(volume == VOLUME_CEILING)
            .then(pl.lit(f"volume at the file's ceiling of {VOLUME_CEILING:,} hundreds: true volume unknown"))
        )
        return raw.select(
            pl.col("Symbol").alias("symbol"),
            pl.lit(Timeframe.DAY.value).alias("timeframe"),
            bounds["ts"],
            bounds["end_ts"],
            *(pl.col(c).cast(pl.Float64, strict=False).alias(c.lower()) for c in ("Open", "High", "Low", "Close")),
            (volume * 100).alias("volume"),
            pl.lit(None, dtype=pl.Float64).alias("vwap"),
            pl.lit(None, dtype=pl.Int64).alias("trade_count"),
            pl.lit(Adjustment.UNKNOWN.value).alias("adjustment"),
            pl.lit(SOURCE).alias("source"),
            pl.struct(pl.all()).struct.json_encode().alias("payload"),
            problem.alias("problem"),
        )

    def _minute(self) -> pl.DataFrame:
        columns = ["stamp", "open", "high", "low", "close", "volume"]
        raw = pl.concat(
            [
                pl.read_csv(
                    self._path(f), separator=";", has_header=False, new_columns=columns, infer_schema=False
                ).with_columns(pl.lit(f.name).alias("file"))
                for f in MINUTE_FILES
            ]
        )
        # NinjaTrader stamps a bar with its end: the bar stamped t covers [t - 1 min, t).
        end = raw["stamp"].str.to_datetime("%Y%m%d %H%M%S", time_zone="UTC", strict=False).cast(UTC_TS)
        return raw.select(
            pl.lit(MINUTE_SYMBOL).alias("symbol"),
            pl.lit(Timeframe.MINUTE.value).alias("timeframe"),
            (end - pl.duration(minutes=1)).alias("ts"),
            end.alias("end_ts"),
            *(pl.col(c).cast(pl.Float64, strict=False) for c in ("open", "high", "low", "close", "volume")),
            pl.lit(None, dtype=pl.Float64).alias("vwap"),
            pl.lit(None, dtype=pl.Int64).alias("trade_count"),
            pl.lit(Adjustment.RAW.value).alias("adjustment"),
            pl.lit(SOURCE).alias("source"),
            pl.struct(pl.all()).struct.json_encode().alias("payload"),
            pl.when(end.is_null())
            .then(pl.concat_str(pl.lit("stamp "), pl.col("stamp"), pl.lit(" is not 'yyyymmdd HHMMSS'")))
            .alias("problem"),
        )
