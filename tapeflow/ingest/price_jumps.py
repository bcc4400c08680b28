"""The price-jump check: bar-to-bar moves that look like a corporate action no recorded
action explains. Findings are recorded in `data_findings` and shown in reports; the bars
stay exactly as the source sent them.

A move is suspect when the open against the previous bar's close is within 4% of a ratio a
split or reverse split produces (1/2, 1/3, 2, 10 ...; within 1.5% for 3-for-2 and 5-for-4, whose
ratios ordinary crashes reach), lies outside 0.6..1.6 while the volume changes by half or more,
or lies outside 0.45..2.2 at all. A recorded action whose ex-date falls between the two
bars explains it if what is left once the action is priced in is no longer suspect.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl

from tapeflow.calendar.exchange import ny_day_bounds
from tapeflow.model import ActionKind
from warehouse import Warehouse
from warehouse.reads import actions_between, bars_between

CHECK = "price_jump"
TOLERANCE = 0.04
NEAR_ONE_TOLERANCE = 0.015  # 2/3 and 4/5: a 20% or 33% fall on news is not rare
BAND = (0.6, 1.6)
WIDE_BAND = (0.45, 2.2)
VOLUME_CHANGE = 1.5
# Price ratios splits produce: n-for-1 (1/n), 3-for-2 and 5-for-4, and 1-for-n reverse splits (n).
SPLIT_RATIOS = {
    **{1 / n: f"a {n}-for-1 split" for n in range(2, 11)},
    2 / 3: "a 3-for-2 split", 4 / 5: "a 5-for-4 split",
    **{float(n): f"a 1-for-{n} reverse split" for n in (2, 3, 4, 5, 6, 8, 10, 15, 20, 25, 30, 40, 50)},
}
FINDING_SCHEMA = {"check_name": pl.String(), "symbol": pl.String(), "timeframe": pl.String(),
                  "ts": pl.Datetime("us", "UTC"), "ratio": pl.Float64(), "detail": pl.String()}
SPLITS = (ActionKind.SPLIT.value, ActionKind.REVERSE_SPLIT.value)


def _suspect(ratio: float, volume_ratio: float | None) -> str | None:
    """What a move of `ratio` looks like, or None when it is an ordinary move."""
    for split, words in SPLIT_RATIOS.items():
        if abs(ratio / split - 1) <= (NEAR_ONE_TOLERANCE if 0.6 < split < 1 else TOLERANCE):
            return f"looks like {words}"
    outside = not BAND[0] <= ratio <= BAND[1]
    if outside and volume_ratio is not None and not 1 / VOLUME_CHANGE < volume_ratio < VOLUME_CHANGE:
        return f"moves x{ratio:.3f} with volume x{volume_ratio:.2f}"
    if not WIDE_BAND[0] <= ratio <= WIDE_BAND[1]:
        return f"moves x{ratio:.3f}"
    return None


def _priced(action: dict, previous_close: float) -> float | None:
    """The price ratio the action alone makes (None: it does not say)."""
    if action["kind"] in SPLITS and action["ratio"]:
        return 1 / action["ratio"]
    if action["amount"] is not None and previous_close > action["amount"]:
        return 1 - action["amount"] / previous_close
    return action["price_factor"]


def find_jumps(bars: pl.DataFrame, actions: pl.DataFrame, timeframe: str) -> pl.DataFrame:
    """Suspect moves in `bars` (of `timeframe`) that `actions` do not explain, as FINDING_SCHEMA rows."""
    if bars.height < 2:
        return pl.DataFrame(schema=FINDING_SCHEMA)
    moves = bars.sort("symbol", "ts").with_columns(
        pl.col("close").shift(1).over("symbol").alias("_previous_close"),
        pl.col("volume").shift(1).over("symbol").alias("_previous_volume"),
        pl.col("ts").shift(1).over("symbol").alias("_previous_ts"),
    ).filter(pl.col("_previous_close") > 0).with_columns(
        (pl.col("open") / pl.col("_previous_close")).alias("_ratio"),
        pl.when(pl.col("_previous_volume") > 0).then(pl.col("volume") / pl.col("_previous_volume")).alias("_volume_ratio"),
    )
    # Only moves that could be suspect at all go through the row-by-row test: every split
    # ratio and the band's edges lie outside 0.85..1.45.
    candidates = moves.filter(~pl.col("_ratio").is_between(0.85, 1.45))
    by_symbol: dict[str, list[dict]] = {}
    for action in actions.to_dicts():
        by_symbol.setdefault(action["symbol"], []).append(action)
    rows = []
    for move in candidates.to_dicts():
        seen = _suspect(move["_ratio"], move["_volume_ratio"])
        if seen is None:
            continue
        between = [a for a in by_symbol.get(move["symbol"], [])
                   if move["_previous_ts"] < ny_day_bounds(a["ex_date"])[0] <= move["ts"]]
        detail = f"open {move['open']:g} after close {move['_previous_close']:g}: {seen}; no recorded action explains it"
        if between:
            expected = 1.0
            for action in between:
                priced = _priced(action, move["_previous_close"])
                expected *= priced if priced else 1.0
            left = _suspect(move["_ratio"] / expected, None if move["_volume_ratio"] is None else 1.0)
            if left is None:
                continue
            named = ", ".join(f"{a['kind']} {a['ex_date']}" for a in between)
            detail = (f"open {move['open']:g} after close {move['_previous_close']:g}: {seen}; the recorded {named} "
                      f"accounts for x{expected:.3f}, leaving x{move['_ratio'] / expected:.3f}")
        rows.append({"check_name": CHECK, "symbol": move["symbol"], "timeframe": timeframe,
                     "ts": move["ts"], "ratio": move["_ratio"], "detail": detail})
    return pl.DataFrame(rows, schema=FINDING_SCHEMA)


def record_jumps(warehouse: Warehouse, timeframe: str, first: date, last: date,
                 symbols: list[str] | None = None) -> pl.DataFrame:
    """Run the check over the stored bars of New York days first..last and replace what it had
    recorded there (an action stored since may explain an earlier finding); returns the findings."""
    start, end = ny_day_bounds(first)[0], ny_day_bounds(last)[1]
    with warehouse.read() as con:
        bars = bars_between(con, timeframe, start, end, symbols)
        actions = actions_between(con, first, last, symbols)
    found = find_jumps(bars, actions, timeframe).with_columns(pl.lit(datetime.now(UTC)).alias("found_at"))
    with warehouse.write() as con:
        con.execute(
            "DELETE FROM data_findings WHERE check_name = ? AND timeframe = ? AND ts >= ? AND ts < ? "
            "AND (? OR list_contains(?, symbol))", [CHECK, timeframe, start, end, symbols is None, symbols or []])
        if found.height:
            con.register("_found", found.to_arrow())
            try:
                con.execute("INSERT INTO data_findings SELECT check_name, symbol, timeframe, ts, ratio, detail, found_at "
                            "FROM _found")
            finally:
                con.unregister("_found")
    return found
