"""The built-in momentum scanner: a watchlist ranked from daily bars, knowable at `as_of`.

For each symbol it takes the latest daily bar that had ended by `as_of` and compares it with
the `lookback` bars before it:

- gap: the bar's open against the previous close, `open / prev_close - 1`;
- relative volume: the bar's volume over the mean volume of the prior bars;
- range expansion: the bar's high-low range over the mean range of the prior bars;
- price band: only names whose close lies within [min_price, max_price] are listed.

Score (0-100, one decimal) = 40 x min(max(gap / 10%, 0), 1)
                           + 35 x min(max((relative volume - 1) / 4, 0), 1)
                           + 25 x min(max((range expansion - 1) / 2, 0), 1)
so a 10% gap on 5x volume with a 3x range scores 100, and a flat, average day scores 0.
Names need `lookback` prior bars, and their latest bar must be from the latest session
anyone has by `as_of` (a symbol whose data stopped is not "still moving"). Rows with a score
of 0 are not listed. Ranks run 1.. by score, ties broken by ticker.

Every input is filtered to bars with `end_ts <= as_of` before anything is computed, so a
snapshot is the same whether or not later bars exist. `scan` is the computation on a frame of
bars; `ScannerSource` is the scanner as a `WatchlistSource` over the warehouse's daily bars.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

import polars as pl

from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.model import check_aware
from tapeflow.progress import tracked
from tapeflow.schemas import SESSIONS, UTC_TS, empty_raw_watchlist
from tapeflow.sources.universe import Membership, load_membership
from warehouse.connection import Warehouse
from warehouse.reads import daily_bars_until

SOURCE = "scanner"
REPORT_EVERY_S = 0.2  # a backfill scans hundreds of sessions: its progress is told this often at most


@dataclass(frozen=True)
class ScannerParams:
    """Tunable parts of the scan; the defaults are the documented ones."""

    min_price: float = 1.0
    max_price: float = 20.0
    lookback: int = 20
    limit: int = 20
    full_gap: float = 0.10
    full_rel_volume: float = 5.0
    full_range_expansion: float = 3.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_price < self.max_price:
            raise ValueError("need 0 <= min_price < max_price")
        if self.lookback < 2 or self.limit < 1:
            raise ValueError("lookback must be >= 2 and limit >= 1")
        if self.full_gap <= 0 or self.full_rel_volume <= 1 or self.full_range_expansion <= 1:
            raise ValueError("full_gap must be > 0; full_rel_volume and full_range_expansion > 1")


def _clip01(expr: pl.Expr) -> pl.Expr:
    return pl.min_horizontal(pl.max_horizontal(expr, pl.lit(0.0)), pl.lit(1.0))


def _mean_of_prior(expr: pl.Expr, n: int) -> pl.Expr:
    """Mean over the n bars before this one, per symbol (this bar excluded)."""
    return expr.shift(1).rolling_mean(n).over("symbol")


def scan(bars: pl.DataFrame, as_of: datetime, session: str, params: ScannerParams = ScannerParams(),
         universe: Membership | None = None) -> pl.DataFrame:
    """A raw watchlist batch (see tapeflow.ingest.watchlist) of the top names at `as_of`, only
    among `universe`'s members at `as_of` when one is given.

    `bars` holds daily bars (symbol, ts, end_ts, open, high, low, close, volume).
    """
    as_of = check_aware("as_of", as_of)
    known = bars.filter(pl.col("end_ts") <= as_of).sort("symbol", "ts")
    if universe is not None:  # point in time: the members of that morning, as known then
        known = known.filter(pl.col("symbol").is_in(sorted(universe.members_at(as_of))))
    bar_range = pl.col("high") - pl.col("low")
    metrics = (
        known.with_columns(
            (pl.col("open") / pl.col("close").shift(1).over("symbol") - 1).alias("gap"),
            (pl.col("volume") / _mean_of_prior(pl.col("volume"), params.lookback)).alias("rel_volume"),
            (bar_range / _mean_of_prior(bar_range, params.lookback)).alias("range_expansion"),
            pl.len().over("symbol").alias("_bars"),
        )
        .group_by("symbol")
        .last()
    )
    latest_session = metrics["end_ts"].max()
    score = (
        40 * _clip01(pl.col("gap") / params.full_gap)
        + 35 * _clip01((pl.col("rel_volume") - 1) / (params.full_rel_volume - 1))
        + 25 * _clip01((pl.col("range_expansion") - 1) / (params.full_range_expansion - 1))
    ).round(1)
    listed = (
        metrics.filter(
            (pl.col("end_ts") == latest_session)
            & (pl.col("_bars") > params.lookback)
            & pl.col("close").is_between(params.min_price, params.max_price)
            & pl.all_horizontal(pl.col(c).is_finite() for c in ("gap", "rel_volume", "range_expansion"))
        )
        .with_columns(score.alias("score"))
        .filter(pl.col("score") > 0)
        .sort(["score", "symbol"], descending=[True, False])
        .head(params.limit)
        .with_row_index("rank", offset=1)
    )
    return _as_watchlist(listed, as_of, session, params, universe.universe.name if universe else None)


def _as_watchlist(listed: pl.DataFrame, as_of: datetime, session: str, params: ScannerParams,
                  universe: str | None = None) -> pl.DataFrame:
    rows = [
        {
            "ticker": r["symbol"],
            "rank": r["rank"],
            "score": r["score"],
            "gap_pct": round(100 * r["gap"], 3),
            "rel_volume": round(r["rel_volume"], 3),
            "range_expansion": round(r["range_expansion"], 3),
            "close": r["close"],
            "bar_end": r["end_ts"].isoformat(),
        }
        for r in listed.iter_rows(named=True)
    ]
    payloads = [json.dumps(row, sort_keys=True) for row in rows]
    scope = {"universe": universe} if universe else {}  # none named: the hash of an unscoped list stays as it was
    snapshot = json.dumps({"as_of": as_of.isoformat(), "params": asdict(params), "rows": rows, **scope}, sort_keys=True)
    # Computed from stored bars rather than fetched: the list exists, and is seen, at as_of.
    fetched_at = as_of
    n = len(rows)
    return pl.DataFrame(
        {
            "source": [SOURCE] * n,
            "session": pl.Series([str(session)] * n, dtype=pl.String),  # a WatchlistSession is its stored name
            "as_of": pl.Series([as_of] * n, dtype=UTC_TS),
            "ticker": [r["ticker"] for r in rows],
            "rank": pl.Series([r["rank"] for r in rows], dtype=pl.Int64),
            "score": pl.Series([float(r["score"]) for r in rows], dtype=pl.Float64),
            "fetched_at": pl.Series([fetched_at] * n, dtype=UTC_TS),
            "payload_hash": [hashlib.sha256(snapshot.encode()).hexdigest()] * n,
            "payload": payloads,
            "problem": pl.Series([None] * n, dtype=pl.String),
        }
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ScannerSource:
    """The scanner as a watchlist source: `daily_bars(until)` answers every daily bar that had
    ended by `until`, `universe()` (optional) the membership scans keep to, and one answer of
    each serves every snapshot of a `snapshots` call."""

    name = SOURCE

    def __init__(
        self,
        daily_bars: Callable[[datetime], pl.DataFrame],
        params: ScannerParams = ScannerParams(),
        *,
        clock: Callable[[], datetime] = _utc_now,
        universe: Callable[[], Membership] | None = None,
    ) -> None:
        self._daily_bars = daily_bars
        self._params = params
        self._clock = clock
        self._universe = universe

    @classmethod
    def from_warehouse(cls, warehouse: Warehouse, params: ScannerParams = ScannerParams(),
                       universe: str | None = None) -> ScannerSource:
        """The scanner over the daily bars stored in `warehouse`, read once per call, among the
        members of the recorded `universe` when one is named (UnknownUniverse if it is not recorded)."""

        def daily_bars(until: datetime) -> pl.DataFrame:
            with warehouse.read() as con:
                return daily_bars_until(con, until)

        def membership() -> Membership:
            with warehouse.read() as con:
                return load_membership(con, str(universe))

        return cls(daily_bars, params, universe=membership if universe is not None else None)

    def __repr__(self) -> str:
        return f"ScannerSource({self._params!r})"

    def close(self) -> None:
        """Nothing is held between calls."""

    def snapshot(self, session: str, as_of: datetime | None = None, limit: int | None = None) -> pl.DataFrame:
        """The scan at `as_of` (None: now), labelled `session`; `limit` overrides the params' one."""
        return self.snapshots([(self._clock() if as_of is None else as_of, session)], limit)

    def snapshots(self, moments: Sequence[tuple[datetime, str]], limit: int | None = None) -> pl.DataFrame:
        """The scan at each (as_of, session), from one read of the bars knowable at the latest as_of."""
        moments = [(check_aware("as_of", as_of), session) for as_of, session in moments]
        for _, session in moments:
            if session not in SESSIONS:
                raise ValueError(f"{SOURCE} session must be one of {', '.join(SESSIONS)}, got {session!r}")
        if not moments:
            return empty_raw_watchlist()
        params = self._params if limit is None else replace(self._params, limit=limit)
        bars = self._daily_bars(max(as_of for as_of, _ in moments))
        universe = self._universe() if self._universe is not None else None
        if len(moments) == 1:  # a snapshot now: over before anyone would watch it
            return scan(bars, moments[0][0], moments[0][1], params, universe)
        lists = []
        first, last = (f"{min(moments)[0].astimezone(NEW_YORK):%Y-%m-%d}", f"{max(moments)[0].astimezone(NEW_YORK):%Y-%m-%d}")
        with tracked(f"scanner lists {first}..{last}", total=len(moments)) as progress:
            reported = time.monotonic()
            for done, (as_of, session) in enumerate(moments, start=1):
                lists.append(scan(bars, as_of, session, params, universe))
                if time.monotonic() - reported >= REPORT_EVERY_S or done == len(moments):
                    reported = time.monotonic()
                    progress.update(done, detail=f"{as_of.astimezone(NEW_YORK):%Y-%m-%d %H:%M}: {lists[-1].height} names")
        return pl.concat(lists, how="vertical_relaxed")
