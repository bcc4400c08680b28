"""Tests for tapeflow.ingest.bars: the vectorised split of a bar batch into good and rejected
rows, and its agreement with `model.Bar`."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapeflow.ingest.bars import CheckedBars, check_bars
from tapeflow.model import Bar, InvalidRecord
from tapeflow.schemas import BAR_SCHEMA, RAW_COLUMNS, UTC_TS

UTC = UTC
NY = ZoneInfo("America/New_York")
T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def iso(dt: datetime) -> str:
    return dt.isoformat()


def row(n: int = 0, **overrides: object) -> dict[str, object]:
    """A good 1m SPY bar starting n minutes after T0, as a source hands it over (ts as ISO text)."""
    ts = T0 + n * MINUTE
    values: dict[str, object] = dict(
        symbol="SPY",
        timeframe="1m",
        ts=iso(ts),
        end_ts=iso(ts + MINUTE),
        open=470.0 + n,
        high=471.0 + n,
        low=469.0 + n,
        close=470.5 + n,
        volume=1000.0,
        vwap=470.2 + n,
        trade_count=12,
        adjustment="raw",
        source="replay",
    )
    values.update(overrides)
    if "payload" not in overrides:
        values["payload"] = json.dumps({"n": n, **{k: str(v) for k, v in overrides.items()}}, sort_keys=True)
    return values


def raw(
    rows: list[dict[str, object]], ts_dtype: pl.DataType = pl.String(), end_dtype: pl.DataType | None = None
) -> pl.DataFrame:
    """One frame row per dict, in RAW_COLUMNS with explicit dtypes (ts/end_ts text unless told)."""
    schema: dict[str, pl.DataType] = {c: BAR_SCHEMA.get(c, pl.String()) for c in RAW_COLUMNS}
    schema["ts"] = ts_dtype
    schema["end_ts"] = end_dtype if end_dtype is not None else ts_dtype
    if any("problem" in r for r in rows):
        schema["problem"] = pl.String()
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema, orient="row")


def reasons_by_payload(checked: CheckedBars) -> dict[str, str]:
    return dict(zip(checked.rejected["payload"].to_list(), checked.rejected["reason"].to_list(), strict=True))


def good_keys(checked: CheckedBars) -> list[tuple[str, str, datetime]]:
    return list(checked.good.select("symbol", "timeframe", "ts").iter_rows())


def assert_shape(checked: CheckedBars, source: pl.DataFrame) -> None:
    assert checked.good.height + checked.rejected.height == source.height
    assert dict(checked.good.schema) == BAR_SCHEMA
    assert checked.good.columns == list(BAR_SCHEMA)
    assert checked.rejected.columns == ["source", "reason", "payload"]
    assert checked.rejected["reason"].null_count() == 0


# --- batches with known outcomes -----------------------------------------------------


def test_all_good_batch_passes_unchanged() -> None:
    batch = raw([row(0), row(1)])
    checked = check_bars(batch)
    assert_shape(checked, batch)
    assert checked.rejected.height == 0
    assert good_keys(checked) == [("SPY", "1m", T0), ("SPY", "1m", T0 + MINUTE)]
    first = checked.good.row(0, named=True)
    assert first["end_ts"] == T0 + MINUTE
    assert (first["open"], first["high"], first["low"], first["close"]) == (470.0, 471.0, 469.0, 470.5)
    assert (first["vwap"], first["trade_count"], first["adjustment"], first["source"]) == (470.2, 12, "raw", "replay")


def test_mixed_batch_rejects_each_bad_row_with_its_reason() -> None:
    rows = [
        row(0),
        row(1, open=math.nan, payload='{"bad": "nan open"}'),
        row(2, high=468.0, low=469.0, open=468.5, close=468.5, vwap=None, payload='{"bad": "high<low"}'),
        row(3, volume=-5.0, payload='{"bad": "volume"}'),
        row(4, end_ts=iso(T0 + 4 * MINUTE), payload='{"bad": "end==ts"}'),
        row(5, timeframe="5m", payload='{"bad": "timeframe"}'),
        row(6, ts="yesterday", payload='{"bad": "ts text"}'),
        row(7),
    ]
    batch = raw(rows)
    checked = check_bars(batch)
    assert_shape(checked, batch)
    assert good_keys(checked) == [("SPY", "1m", T0), ("SPY", "1m", T0 + 7 * MINUTE)]
    assert reasons_by_payload(checked) == {
        '{"bad": "nan open"}': "open is not a finite number",
        '{"bad": "high<low"}': "high is below low; open/close outside the bar's range",
        '{"bad": "volume"}': "volume must be >= 0",
        '{"bad": "end==ts"}': "bar end is not after its start",
        '{"bad": "timeframe"}': "unknown timeframe",
        '{"bad": "ts text"}': "ts is not an ISO-8601 timestamp ('yesterday')",
    }
    assert checked.rejected["source"].to_list() == ["replay"] * 6


def test_rejected_payload_is_the_original_text() -> None:
    payload = '{"S":"SPY","o":NaN,  "note":"ünïcode \\u00e9 kept as-is"}'
    checked = check_bars(raw([row(0, open=math.nan, payload=payload)]))
    assert checked.rejected["payload"].to_list() == [payload]


def test_naive_datetime_column_rejects_every_row() -> None:
    naive = [
        row(i, ts=(T0 + i * MINUTE).replace(tzinfo=None), end_ts=(T0 + (i + 1) * MINUTE).replace(tzinfo=None))
        for i in range(3)
    ]
    batch = raw(naive, ts_dtype=pl.Datetime("us"))
    checked = check_bars(batch)
    assert_shape(checked, batch)
    assert checked.good.height == 0
    assert checked.rejected["reason"].to_list() == [
        "ts is a naive timestamp: a time zone is required; end_ts is a naive timestamp: a time zone is required"
    ] * 3


def test_aware_datetime_column_in_new_york_is_converted_to_utc() -> None:
    rows = [row(0, ts=datetime(2024, 1, 2, 9, 30), end_ts=datetime(2024, 1, 2, 9, 31))]
    batch = raw(rows, ts_dtype=pl.Datetime("us")).with_columns(
        pl.col("ts", "end_ts").dt.replace_time_zone("America/New_York")
    )
    checked = check_bars(batch)
    assert checked.rejected.height == 0
    assert checked.good["ts"].to_list() == [T0]
    assert checked.good["end_ts"].to_list() == [T0 + MINUTE]
    assert checked.good.schema["ts"] == UTC_TS


def test_naive_iso_text_is_rejected_only_on_its_rows() -> None:
    rows = [
        row(0),
        row(1, ts="2024-01-02T14:31:00", payload="naive-ts"),
        row(2, ts="2024-01-02T09:32:00-05:00", end_ts="2024-01-02T09:33:00-05:00"),
        row(3, end_ts="2024-01-02T14:34:00", payload="naive-end"),
        row(4, ts="2024-01-02T14:34:00Z", end_ts="2024-01-02T14:35:00Z"),
    ]
    batch = raw(rows)
    checked = check_bars(batch)
    assert_shape(checked, batch)
    assert good_keys(checked) == [("SPY", "1m", T0 + n * MINUTE) for n in (0, 2, 4)]
    assert reasons_by_payload(checked) == {
        "naive-ts": "ts is a naive timestamp (2024-01-02T14:31:00): a time zone is required",
        "naive-end": "end_ts is a naive timestamp (2024-01-02T14:34:00): a time zone is required",
    }


def test_missing_ts_is_named() -> None:
    checked = check_bars(raw([row(0, ts=None, payload="p1"), row(1, end_ts="  ", payload="p2")]))
    assert reasons_by_payload(checked) == {"p1": "ts is missing", "p2": "end_ts is missing"}


def test_identical_duplicates_keep_the_first() -> None:
    batch = raw([row(0, payload="first"), row(1), row(0, payload="second")])
    checked = check_bars(batch)
    assert_shape(checked, batch)
    assert good_keys(checked) == [("SPY", "1m", T0), ("SPY", "1m", T0 + MINUTE)]
    assert reasons_by_payload(checked) == {"second": "duplicate of an earlier row in the same batch"}


def test_same_instant_written_in_two_offsets_is_a_duplicate() -> None:
    ny = row(0, ts="2024-01-02T09:30:00-05:00", end_ts="2024-01-02T09:31:00-05:00", payload="ny")
    batch = raw([row(0, payload="utc"), ny])
    checked = check_bars(batch)
    assert checked.good.height == 1
    assert reasons_by_payload(checked) == {"ny": "duplicate of an earlier row in the same batch"}


def test_conflicting_duplicates_are_all_rejected() -> None:
    batch = raw([row(0, payload="a"), row(1), row(0, close=470.75, payload="b")])
    checked = check_bars(batch)
    assert_shape(checked, batch)
    assert good_keys(checked) == [("SPY", "1m", T0 + MINUTE)]
    conflict = "conflicting rows for the same (symbol, timeframe, ts) in one batch"
    assert reasons_by_payload(checked) == {"a": conflict, "b": conflict}


def test_same_ts_for_other_symbol_or_timeframe_is_not_a_duplicate() -> None:
    batch = raw([row(0), row(0, symbol="QQQ"), row(0, timeframe="1d", end_ts=iso(T0 + timedelta(days=1)))])
    assert check_bars(batch).good.height == 3


def test_bad_row_does_not_make_a_good_row_conflict() -> None:
    batch = raw([row(0, payload="good"), row(0, high=1.0, payload="bad")])
    checked = check_bars(batch)
    assert good_keys(checked) == [("SPY", "1m", T0)]
    assert reasons_by_payload(checked) == {"bad": "high is below low; open/close outside the bar's range"}


def test_rejected_first_copy_does_not_shadow_a_good_second_copy() -> None:
    batch = raw([row(0, problem="vendor flagged", payload="flagged"), row(0, problem=None, payload="clean")])
    checked = check_bars(batch)
    assert good_keys(checked) == [("SPY", "1m", T0)]
    assert reasons_by_payload(checked) == {"flagged": "vendor flagged"}


def test_source_problem_is_the_reason() -> None:
    rows = [row(0, problem=None), row(1, problem="vendor row had no 'c' field", payload="flagged")]
    batch = raw(rows)
    checked = check_bars(batch)
    assert_shape(checked, batch)
    assert good_keys(checked) == [("SPY", "1m", T0)]
    assert reasons_by_payload(checked) == {"flagged": "vendor row had no 'c' field"}


def test_several_reasons_are_joined_in_order() -> None:
    rows = [row(0, symbol="spy", ts="2024-01-02T14:30:00", close=-1.0, volume=math.inf, payload="many")]
    checked = check_bars(raw(rows))
    assert checked.good.height == 0
    assert reasons_by_payload(checked) == {
        "many": "; ".join(
            [
                "ts is a naive timestamp (2024-01-02T14:30:00): a time zone is required",
                "symbol must be 1-21 upper-case letters, digits or . / ^ -",
                "volume is not a finite number",
                "close must be > 0",
                "open/close outside the bar's range",
            ]
        )
    }


def test_source_problem_comes_first_in_the_reason() -> None:
    rows = [row(0, problem="close was '-1'", close=-1.0, payload="p")]
    checked = check_bars(raw(rows))
    assert reasons_by_payload(checked) == {
        "p": "close was '-1'; close must be > 0; open/close outside the bar's range"
    }


def test_source_problem_replaces_the_time_reasons_of_a_row_it_could_not_date() -> None:
    rows = [
        row(0, ts=None, end_ts=None, problem="no 't' field", payload="undated"),
        row(1, ts=None, payload="undated, no problem"),
        row(2, end_ts="2024-01-02T14:33:00", problem="odd size", payload="dated"),
    ]
    checked = check_bars(raw(rows))
    assert reasons_by_payload(checked) == {
        "undated": "no 't' field",
        "undated, no problem": "ts is missing",
        "dated": "odd size; end_ts is a naive timestamp (2024-01-02T14:33:00): a time zone is required",
    }


def test_other_column_rules() -> None:
    rows = [
        row(0, symbol="", payload="empty symbol"),
        row(1, adjustment="weird", payload="adjustment"),
        row(2, vwap=0.0, payload="vwap"),
        row(3, trade_count=-1, payload="trades"),
        row(4, source=None, payload="source"),
        row(5, high=None, payload="null high"),
        row(6, vwap=None, trade_count=None),
    ]
    checked = check_bars(raw(rows))
    assert good_keys(checked) == [("SPY", "1m", T0 + 6 * MINUTE)]
    assert reasons_by_payload(checked) == {
        "empty symbol": "symbol is missing",
        "adjustment": "unknown price adjustment",
        "vwap": "vwap must be a finite number > 0",
        "trades": "trade_count must be >= 0",
        "source": "source must be named",
        "null high": "high is missing or not a number",
    }
    assert checked.rejected.filter(pl.col("payload") == "source")["source"].to_list() == ["unknown"]


def test_empty_batch() -> None:
    checked = check_bars(raw([row(0)]).clear())
    assert checked.good.height == 0 and checked.rejected.height == 0
    assert dict(checked.good.schema) == BAR_SCHEMA


@pytest.mark.parametrize("column", ["payload", "ts", "volume"])
def test_missing_column_raises(column: str) -> None:
    with pytest.raises(ValueError, match=rf"bar batch lacks columns \['{column}'\]"):
        check_bars(raw([row(0)]).drop(column))


@pytest.mark.parametrize("symbol", ["\x1fSPY", "\x1c"])
def test_control_char_symbol_agrees_with_bar(symbol: str) -> None:
    with pytest.raises(ValueError):
        Bar(symbol=symbol, timeframe="1m", ts=T0, end=T0 + MINUTE, open=1, high=1, low=1, close=1, volume=0, source="s")
    assert check_bars(raw([row(0, symbol=symbol)])).good.height == 0


# --- property: check_bars keeps a row iff Bar accepts it ---------------------------

INSTANTS = [T0, T0 + MINUTE, T0 + timedelta(days=1), datetime(2024, 7, 1, 13, 30, 0, 123456, tzinfo=UTC)]
WILD_FLOATS = st.one_of(
    st.sampled_from([0.0, -0.0, -1.0, math.nan, math.inf, -math.inf, None]),
    st.floats(allow_nan=True, allow_infinity=True),
)
FIELDS = tuple(BAR_SCHEMA)


def as_column(instant: datetime, kind: str) -> tuple[object, object]:
    """(value for the frame, value for Bar) for one instant written as `kind`."""
    if kind == "datetime_utc":
        return instant, instant
    if kind == "text_utc":
        return instant.isoformat(), instant
    if kind == "text_ny":
        local = instant.astimezone(NY)
        return local.isoformat(), local
    if kind == "text_naive":
        naive = instant.replace(tzinfo=None)
        return naive.isoformat(), naive
    return "not a time", "not a time"


GOOD_KINDS = ["datetime_utc", "text_utc", "text_ny"]
ANY_KINDS = [*GOOD_KINDS, "text_naive", "text_junk"]


@st.composite
def raw_rows(draw: st.DrawFn) -> tuple[dict[str, object], dict[str, object]]:
    """A valid bar with 0-2 fields drawn from a wild range instead: (frame row, Bar kwargs)."""
    faults = draw(st.integers(0, 2))
    broken = draw(st.sets(st.sampled_from(FIELDS), min_size=faults, max_size=faults))
    low, a, b, high = sorted(draw(st.lists(st.sampled_from([1.0, 2.0, 2.5, 3.0, 400.25]), min_size=4, max_size=4)))
    values: dict[str, object] = dict(
        symbol=draw(st.sampled_from(["SPY", "BRK.B", "QQQ"])),
        timeframe=draw(st.sampled_from(["1m", "1d"])),
        open=a,
        close=b,
        low=low,
        high=high,
        volume=draw(st.sampled_from([0.0, 1.0, 1e9])),
        vwap=draw(st.sampled_from([None, 2.0])),
        trade_count=draw(st.sampled_from([None, 0, 5])),
        adjustment=draw(st.sampled_from(["raw", "split", "all", "unknown"])),
        source=draw(st.sampled_from(["replay", "alpaca"])),
    )
    wild = {
        "symbol": st.sampled_from(["spy", "", " ", "SPY ", "S PY", "Spy", None]),
        "timeframe": st.sampled_from(["1m", "1d", "5m", None]),
        "open": WILD_FLOATS,
        "high": WILD_FLOATS,
        "low": WILD_FLOATS,
        "close": WILD_FLOATS,
        "volume": WILD_FLOATS,
        "vwap": WILD_FLOATS,
        "trade_count": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
        "adjustment": st.sampled_from(["raw", "RAW", "other", None]),
        "source": st.sampled_from(["x", "", None]),
    }
    for name in broken - {"ts", "end_ts"}:
        values[name] = draw(wild[name])
    ts = draw(st.sampled_from(INSTANTS))
    if "end_ts" in broken:
        end = draw(st.sampled_from([ts - MINUTE, ts, *INSTANTS]))
    else:
        end = ts + draw(st.sampled_from([timedelta(microseconds=1), MINUTE, timedelta(days=1)]))
    ts_frame, ts_bar = as_column(ts, draw(st.sampled_from(ANY_KINDS if "ts" in broken else GOOD_KINDS)))
    end_frame, end_bar = as_column(end, draw(st.sampled_from(ANY_KINDS if "end_ts" in broken else GOOD_KINDS)))
    frame_row = {**values, "ts": ts_frame, "end_ts": end_frame, "payload": "{}"}
    bar_kwargs = {**values, "ts": ts_bar, "end": end_bar}
    return frame_row, bar_kwargs


def column_dtype(value: object) -> pl.DataType:
    return UTC_TS if isinstance(value, datetime) else pl.String()


def bar_accepts(kwargs: dict[str, object]) -> bool:
    try:
        Bar(**kwargs)  # type: ignore[arg-type]
    except ValueError:  # InvalidRecord, or an unknown enum value
        return False
    return True


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(raw_rows())
def test_check_bars_keeps_a_row_iff_bar_accepts_it(case: tuple[dict[str, object], dict[str, object]]) -> None:
    frame_row, bar_kwargs = case
    frame = raw([frame_row], ts_dtype=column_dtype(frame_row["ts"]), end_dtype=column_dtype(frame_row["end_ts"]))
    checked = check_bars(frame)
    assert checked.good.height + checked.rejected.height == 1
    accepted = bar_accepts(bar_kwargs)
    assert (checked.good.height == 1) == accepted, checked.rejected.to_dicts()
    if accepted:
        kept = checked.good.row(0, named=True)
        bar = Bar(**bar_kwargs)  # type: ignore[arg-type]
        assert (kept["ts"], kept["end_ts"]) == (bar.ts, bar.end)
        assert (kept["open"], kept["high"], kept["low"], kept["close"], kept["volume"]) == (
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            bar.volume,
        )


# --- values a vendor sent that would otherwise vanish, and bars that were still forming ---


def test_unparseable_optional_values_are_refused_not_nulled() -> None:
    batch = pl.DataFrame(
        [row(0, payload="vwap"), row(1, payload="count"), row(2, payload="fraction"), row(3, payload="fine")],
        schema={c: pl.String() for c in RAW_COLUMNS},
    )
    batch = batch.with_columns(
        pl.when(pl.col("payload") == "vwap").then(pl.lit("garbage")).otherwise("vwap").alias("vwap"),
        pl.when(pl.col("payload") == "count").then(pl.lit("many"))
        .when(pl.col("payload") == "fraction").then(pl.lit("1.5")).otherwise("trade_count").alias("trade_count"),
    )
    checked = check_bars(batch)
    assert reasons_by_payload(checked) == {
        "vwap": "vwap is not a number",
        "count": "trade_count is not a whole number",
        "fraction": "trade_count is not a whole number",
    }
    assert checked.good["trade_count"].to_list() == [12]


def test_a_bar_still_forming_is_refused() -> None:
    received = T0 + 90 * timedelta(seconds=1)  # 14:31:30: the 14:31 bar has not ended
    checked = check_bars(raw([row(0, payload="done"), row(1, payload="forming")]), received_at=received)
    assert good_keys(checked) == [("SPY", "1m", T0)]
    assert reasons_by_payload(checked) == {"forming": "bar had not ended when it was received (still forming)"}


def test_bar_span_must_match_its_timeframe() -> None:
    batch = raw([
        row(0, end_ts=iso(T0 + 5 * MINUTE), payload="five-minute"),
        row(1, timeframe="1d", end_ts=iso(T0 + MINUTE + timedelta(days=2)), payload="two-day"),
        row(2, timeframe="1d", end_ts=iso(T0 + 2 * MINUTE + timedelta(hours=6, minutes=30)), payload="session"),
    ])
    checked = check_bars(batch)
    assert reasons_by_payload(checked) == {
        "five-minute": "a 1m bar must span exactly one minute",
        "two-day": "a 1d bar must span at most one day",
    }
    with pytest.raises(InvalidRecord, match="a 1m bar must span exactly one minute"):
        Bar(symbol="SPY", timeframe="1m", ts=T0, end=T0 + 5 * MINUTE, open=1, high=1, low=1, close=1, volume=0, source="s")
