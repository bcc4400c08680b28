"""Tests for tapeflow.ingest.watchlist: the split of a watchlist batch into good and rejected
rows, and its agreement with `model.WatchlistRow` (plus the warehouse's own rules)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapeflow.ingest.watchlist import RANK_MAX, CheckedWatchlist, check_watchlist
from tapeflow.model import SYMBOL_PATTERN, WatchlistRow
from tapeflow.schemas import SESSIONS, UTC_TS, WATCHLIST_KEY, WATCHLIST_RAW_COLUMNS, WATCHLIST_SCHEMA, empty_raw_watchlist

UTC = UTC
NY = ZoneInfo("America/New_York")
T0 = datetime(2026, 3, 5, 13, 45, tzinfo=UTC)  # 08:45 New York: pre-market
SEEN = T0 + timedelta(seconds=3)


def row(ticker: str = "NVDA", rank: int | None = 1, score: float | None = 87.5, **overrides: object) -> dict[str, object]:
    """A good pre-market row as a source hands it over (times as ISO text unless told)."""
    values: dict[str, object] = dict(
        source="bullalert",
        session="pre_market",
        as_of=T0.isoformat(),
        ticker=ticker,
        rank=rank,
        score=score,
        fetched_at=SEEN.isoformat(),
        payload_hash="h1",
        payload=f'{{"rank": {rank}, "score": {score}, "ticker": "{ticker}"}}',
    )
    values.update(overrides)
    return values


def raw(rows: list[dict[str, object]], time_dtype: pl.DataType = pl.String(), rank_dtype: pl.DataType = pl.Int64()) -> pl.DataFrame:
    schema: dict[str, pl.DataType] = {c: WATCHLIST_SCHEMA.get(c, pl.String()) for c in WATCHLIST_RAW_COLUMNS}
    schema["as_of"] = schema["fetched_at"] = time_dtype
    schema["rank"] = rank_dtype
    if any("problem" in r for r in rows):
        schema["problem"] = pl.String()
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema, orient="row")


def reasons_by_payload(checked: CheckedWatchlist) -> dict[str, str]:
    return dict(zip(checked.rejected["payload"].to_list(), checked.rejected["reason"].to_list(), strict=True))


def good_tickers(checked: CheckedWatchlist) -> list[tuple[str, int, float]]:
    return list(checked.good.select("ticker", "rank", "score").iter_rows())


def assert_shape(checked: CheckedWatchlist, batch: pl.DataFrame) -> None:
    assert checked.good.height + checked.rejected.height == batch.height
    assert dict(checked.good.schema) == {**WATCHLIST_SCHEMA, "payload": pl.String()}
    assert checked.rejected.columns == ["source", "reason", "payload"]
    assert checked.rejected["reason"].null_count() == 0


def test_schema_matches_the_warehouse_table() -> None:
    assert list(WATCHLIST_SCHEMA) == [
        "source", "session", "as_of", "ticker", "rank", "score", "fetched_at", "payload_hash"
    ]
    assert WATCHLIST_KEY == ("source", "session", "as_of", "ticker")
    assert list(empty_raw_watchlist().columns) == [*WATCHLIST_SCHEMA, "payload", "problem"]


def test_good_batch_passes_with_utc_instants() -> None:
    ny_as_of = T0.astimezone(NY).isoformat()  # 2026-03-05T08:45:00-05:00
    batch = raw([row("NVDA", 1, 87.5), row("BRK.B", 2, 0.0, as_of=ny_as_of), row("^VIX", 3, 100.0, fetched_at=T0.isoformat())])
    checked = check_watchlist(batch)
    assert_shape(checked, batch)
    assert checked.rejected.height == 0
    assert good_tickers(checked) == [("NVDA", 1, 87.5), ("BRK.B", 2, 0.0), ("^VIX", 3, 100.0)]
    assert checked.good["as_of"].to_list() == [T0, T0, T0]
    assert checked.good["fetched_at"].to_list() == [SEEN, SEEN, T0]
    assert checked.good.schema["as_of"] == UTC_TS


def test_each_bad_row_is_rejected_with_its_reason() -> None:
    rows = [
        row("NVDA", 1, 87.5),
        row("nvda", 2, 50.0, payload="lower"),
        row("", 3, 50.0, payload="empty ticker"),
        row("AMD", 0, 50.0, payload="rank 0"),
        row("AMD", None, 50.0, payload="rank null"),
        row("AMD", 4, 100.5, payload="score high"),
        row("AMD", 5, -0.1, payload="score low"),
        row("AMD", 6, math.nan, payload="score nan"),
        row("AMD", 7, None, payload="score null"),
        row("AMD", 8, 1.0, fetched_at=(T0 - timedelta(microseconds=1)).isoformat(), payload="seen early"),
        row("AMD", 9, 1.0, as_of="2026-03-05T13:45:00", payload="naive"),
        row("AMD", 10, 1.0, fetched_at="soon", payload="junk time"),
        row("AMD", 11, 1.0, session="all", payload="session all"),
        row("AMD", 12, 1.0, session=None, payload="session null"),
        row("AMD", 13, 1.0, source="", payload="no source"),
        row("AMD", 14, 1.0, payload_hash=None, payload="no hash"),
        row("AMD", RANK_MAX + 1, 1.0, payload="rank too big"),
    ]
    batch = raw(rows)
    checked = check_watchlist(batch)
    assert_shape(checked, batch)
    assert good_tickers(checked) == [("NVDA", 1, 87.5)]
    assert reasons_by_payload(checked) == {
        "lower": "ticker must be 1-21 upper-case letters, digits or . / ^ -",
        "empty ticker": "ticker is missing",
        "rank 0": "rank must be an integer >= 1",
        "rank null": "rank is missing or not an integer",
        "score high": "score must be within 0..100",
        "score low": "score must be within 0..100",
        "score nan": "score is not a finite number",
        "score null": "score is missing or not a number",
        "seen early": "fetched_at is before as_of: a snapshot cannot be seen before it exists",
        "naive": "as_of is a naive timestamp (2026-03-05T13:45:00): a time zone is required",
        "junk time": "fetched_at is not an ISO-8601 timestamp ('soon')",
        "session all": "session must be one of pre_market, market, after_hours",
        "session null": "session is missing",
        "no source": "source must be named",
        "no hash": "payload_hash is missing",
        "rank too big": f"rank must be <= {RANK_MAX}",
    }
    assert checked.rejected.filter(pl.col("payload") == "no source")["source"].to_list() == ["unknown"]


def test_every_session_of_the_table_is_accepted() -> None:
    checked = check_watchlist(raw([row(session=s, payload=s) for s in SESSIONS]))
    assert checked.good["session"].to_list() == list(SESSIONS)


def test_ticker_with_trailing_newline_is_refused() -> None:
    # model._symbol uses re.match with `$`, which also matches before a final newline, so
    # WatchlistRow accepts "NVDA\n"; the warehouse must not store it.
    assert re.match(SYMBOL_PATTERN, "NVDA\n")
    checked = check_watchlist(raw([row("NVDA\n", payload="newline")]))
    assert reasons_by_payload(checked) == {"newline": "ticker must be 1-21 upper-case letters, digits or . / ^ -"}


def test_naive_datetime_column_rejects_every_row() -> None:
    rows = [row(as_of=T0.replace(tzinfo=None), fetched_at=SEEN.replace(tzinfo=None), payload=str(i)) for i in range(2)]
    checked = check_watchlist(raw(rows, time_dtype=pl.Datetime("us")))
    assert checked.good.height == 0
    assert checked.rejected["reason"].to_list() == [
        "as_of is a naive timestamp: a time zone is required; fetched_at is a naive timestamp: a time zone is required"
    ] * 2


def test_identical_duplicate_ticker_keeps_the_first() -> None:
    batch = raw([row("NVDA", 1, 87.5, payload="first"), row("AMD", 2, 80.0), row("NVDA", 1, 87.5, payload="second")])
    checked = check_watchlist(batch)
    assert_shape(checked, batch)
    assert good_tickers(checked) == [("NVDA", 1, 87.5), ("AMD", 2, 80.0)]
    assert reasons_by_payload(checked) == {"second": "duplicate of an earlier row in the same snapshot"}


def test_same_snapshot_fetched_twice_is_one_listing() -> None:
    later = (SEEN + timedelta(minutes=1)).isoformat()
    batch = raw([row(payload="first fetch"), row(fetched_at=later, payload_hash="h1", payload="second fetch")])
    checked = check_watchlist(batch)
    assert checked.good["fetched_at"].to_list() == [SEEN]
    assert reasons_by_payload(checked) == {"second fetch": "duplicate of an earlier row in the same snapshot"}


@pytest.mark.parametrize(("rank", "score"), [(2, 87.5), (1, 87.0)])
def test_conflicting_duplicate_ticker_rejects_every_copy(rank: int, score: float) -> None:
    batch = raw([row("NVDA", 1, 87.5, payload="a"), row("AMD", 3, 80.0), row("NVDA", rank, score, payload="b")])
    checked = check_watchlist(batch)
    assert good_tickers(checked) == [("AMD", 3, 80.0)]
    conflict = "conflicting rank/score for the same ticker in one snapshot"
    assert reasons_by_payload(checked) == {"a": conflict, "b": conflict}


def test_same_ticker_in_other_snapshots_is_not_a_duplicate() -> None:
    later = T0 + timedelta(minutes=1)
    batch = raw([
        row(),
        row(session="market", payload="market"),
        row(as_of=later.isoformat(), fetched_at=later.isoformat(), score=60.0, payload="later"),
        row(source="scanner", payload="scanner"),
    ])
    assert check_watchlist(batch).good.height == 4


def test_bad_copy_does_not_shadow_or_conflict_with_a_good_one() -> None:
    batch = raw([row(score=130.0, payload="bad"), row(payload="good"), row(problem="vendor flagged", payload="flagged")])
    checked = check_watchlist(batch)
    assert good_tickers(checked) == [("NVDA", 1, 87.5)]
    assert reasons_by_payload(checked) == {"bad": "score must be within 0..100", "flagged": "vendor flagged"}


def test_source_problem_comes_first_and_replaces_a_missing_as_of() -> None:
    rows = [
        row(as_of=None, problem="malformed JSON from bullalert: Expecting value", ticker=None, rank=None, score=None, payload="page"),
        row(as_of=None, payload="undated"),
        row(score=120.0, problem="meta looked odd", payload="both"),
    ]
    checked = check_watchlist(raw(rows))
    assert reasons_by_payload(checked) == {
        "page": "malformed JSON from bullalert: Expecting value; ticker is missing; rank is missing or not an integer; "
        "score is missing or not a number",
        "undated": "as_of is missing",
        "both": "meta looked odd; score must be within 0..100",
    }


def test_float_rank_column_keeps_only_whole_ranks() -> None:
    batch = raw([row("NVDA", 1.0, payload="whole"), row("AMD", 1.5, payload="half")], rank_dtype=pl.Float64())  # type: ignore[arg-type]
    checked = check_watchlist(batch)
    assert good_tickers(checked) == [("NVDA", 1, 87.5)]
    assert checked.good.schema["rank"] == pl.Int64()
    assert reasons_by_payload(checked) == {"half": "rank is missing or not an integer"}


def test_empty_batch_and_missing_columns() -> None:
    checked = check_watchlist(empty_raw_watchlist())
    assert checked.good.height == 0 and checked.rejected.height == 0
    assert dict(checked.good.schema) == {**WATCHLIST_SCHEMA, "payload": pl.String()}
    with pytest.raises(ValueError, match=r"watchlist batch lacks columns \['payload_hash'\]"):
        check_watchlist(raw([row()]).drop("payload_hash"))


# --- property: check_watchlist keeps a row iff WatchlistRow (and the warehouse) accept it ---

INSTANTS = [T0, T0 + timedelta(minutes=1), datetime(2026, 7, 1, 20, 5, 0, 123456, tzinfo=UTC)]
FIELDS = tuple(WATCHLIST_SCHEMA)
WILD = {
    "source": st.sampled_from(["bullalert", "x", "", None]),
    "session": st.sampled_from([*SESSIONS, "", None, "all", "current", "Market", "2026-03-05"]),
    "ticker": st.one_of(
        st.sampled_from(["nvda", "", " ", "NVDA ", "NVDA\n", "N VDA", "^VIX", "BRK.B", "A" * 22, None]),
        st.text(alphabet="AZ09.^-/ a\n\x1f", max_size=23),
    ),
    "rank": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 1, RANK_MAX, RANK_MAX + 1])),
    "score": st.one_of(
        st.none(), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 100.0, 100.0001, -1e-9])
    ),
    "payload_hash": st.sampled_from(["h", "", None]),
}
GOOD_KINDS = ["datetime_utc", "text_utc", "text_ny"]
ANY_KINDS = [*GOOD_KINDS, "text_naive", "text_junk", "none"]


def as_column(instant: datetime, kind: str) -> tuple[object, object]:
    """(value for the frame, value for WatchlistRow) for one instant written as `kind`."""
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
    if kind == "none":
        return None, None
    return "not a time", "not a time"


@st.composite
def raw_rows(draw: st.DrawFn) -> tuple[dict[str, object], dict[str, object]]:
    """A valid row with 0-2 fields drawn from a wild range instead: (frame row, WatchlistRow kwargs)."""
    faults = draw(st.integers(0, 2))
    broken = draw(st.sets(st.sampled_from(FIELDS), min_size=faults, max_size=faults))
    values: dict[str, object] = dict(
        source="bullalert",
        session=draw(st.sampled_from(SESSIONS)),
        ticker=draw(st.sampled_from(["NVDA", "BRK.B", "BF-B", "^VIX"])),
        rank=draw(st.integers(1, 100)),
        score=draw(st.sampled_from([0.0, 42.5, 100.0])),
        payload_hash="h",
    )
    for name in broken - {"as_of", "fetched_at"}:
        values[name] = draw(WILD[name])
    as_of = draw(st.sampled_from(INSTANTS))
    if "fetched_at" in broken:
        fetched = draw(st.sampled_from([as_of - timedelta(microseconds=1), as_of, *INSTANTS]))
    else:
        fetched = as_of + draw(st.sampled_from([timedelta(0), timedelta(microseconds=1), timedelta(seconds=3)]))
    as_of_frame, as_of_model = as_column(as_of, draw(st.sampled_from(ANY_KINDS if "as_of" in broken else GOOD_KINDS)))
    fetched_frame, fetched_model = as_column(fetched, draw(st.sampled_from(ANY_KINDS if "fetched_at" in broken else GOOD_KINDS)))
    frame_row = {**values, "as_of": as_of_frame, "fetched_at": fetched_frame, "payload": "{}"}
    model_kwargs = {**values, "as_of": as_of_model, "fetched_at": fetched_model}
    return frame_row, model_kwargs


def model_accepts(kwargs: dict[str, object]) -> bool:
    try:
        WatchlistRow(**kwargs)  # type: ignore[arg-type]
    except ValueError:  # InvalidRecord
        return False
    return True


def warehouse_accepts(kwargs: dict[str, object]) -> bool:
    """The rules check_watchlist adds to WatchlistRow's (the model lacks them; see the module)."""
    ticker = kwargs["ticker"]
    return (
        kwargs["session"] in SESSIONS
        and bool(kwargs["source"])
        and bool(kwargs["payload_hash"])
        and isinstance(kwargs["rank"], int) and kwargs["rank"] <= RANK_MAX
        and not (isinstance(ticker, str) and ticker.endswith("\n"))  # re's `$` matches before a final newline
    )


def column_dtype(value: object) -> pl.DataType:
    return UTC_TS if isinstance(value, datetime) else pl.String()


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(raw_rows())
def test_check_watchlist_keeps_a_row_iff_the_model_accepts_it(case: tuple[dict[str, object], dict[str, object]]) -> None:
    frame_row, kwargs = case
    schema: dict[str, pl.DataType] = {c: WATCHLIST_SCHEMA.get(c, pl.String()) for c in WATCHLIST_RAW_COLUMNS}
    schema["as_of"], schema["fetched_at"] = column_dtype(frame_row["as_of"]), column_dtype(frame_row["fetched_at"])
    frame = pl.DataFrame([frame_row], schema=schema)
    checked = check_watchlist(frame)
    assert checked.good.height + checked.rejected.height == 1
    accepted = model_accepts(kwargs) and warehouse_accepts(kwargs)
    assert (checked.good.height == 1) == accepted, checked.rejected.to_dicts()
    if accepted:
        kept = checked.good.row(0, named=True)
        model = WatchlistRow(**kwargs)  # type: ignore[arg-type]
        assert (kept["as_of"], kept["fetched_at"], kept["rank"], kept["score"]) == (
            model.as_of, model.fetched_at, model.rank, model.score
        )
