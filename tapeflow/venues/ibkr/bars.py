"""Interactive Brokers historical bars through ib_async (TWS / IB Gateway socket API).

Requests: `Stock(symbol, "SMART", "USD")` qualified first, then `reqHistoricalData` with
whatToShow="TRADES" and formatDate=2. Minute bars: barSize "1 min", useRTH=False (pre-market
and after-hours included); IB dates each bar by its START, in epoch seconds, so instants are
unambiguous UTC. Daily bars: barSize "1 day", useRTH=True; IB dates them by New York session
date ("yyyymmdd"), turned into session open/close by `daily_bounds`.

Prices: IB's TRADES history is adjusted for splits but not for dividends, so `adjustment` is
"split" (IB's ADJUSTED_LAST would be the dividend-adjusted series).

Chunking: one IB request may only span so much per bar size (IB's step-size table: one day of
1-min bars, one year of daily bars). A window is cut into consecutive pieces, oldest first:
minute pieces of at most 86,400 s, asked as exact "<n> S" durations ending at the piece's end,
so the pieces tile the window; daily pieces of at most 364 days, asked as "<days + 1> D" (one
day of slack; what falls outside the piece is dropped). A bar is taken only from the piece that
holds its start, so overlapping answers never double a bar, while duplicates IB sends within a
piece all come back (check_bars keeps one).

Blocking: this uses ib_async's synchronous API from the calling thread (a sync Prefect task);
it never patches asyncio. Every call is bounded: connect by `connect_timeout_s`, each request by
`request_timeout_s`. A pacing violation (error 162) is retried once after `pacing_wait_s`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall_time
from typing import Any, TypeVar

import polars as pl
from ib_async import IB, BarData, Contract, Stock
from ib_async.ib import StartupFetchNONE
from ib_async.wrapper import RequestError

from tapeflow.calendar.exchange import NEW_YORK, ny_day
from tapeflow.config import Settings
from tapeflow.model import Adjustment, Timeframe
from tapeflow.sources.base import Window, daily_bounds, empty_raw_bars
from tapeflow.sources.http import VendorError

SOURCE = "ibkr"
ADJUSTMENT = Adjustment.SPLIT.value
WHAT_TO_SHOW = "TRADES"
FORMAT_DATE_EPOCH = 2
MINUTE = timedelta(minutes=1)
REGULAR_OPEN = wall_time(9, 30)  # every XNYS session opens then, half days included
UNSET = -1  # IB's "not available" for volume, WAP and bar count

# IB error codes this adapter tells apart.
NO_SECURITY = 200
HMDS_ERROR = 162  # "Historical Market Data Service error message:..." (no data, pacing, ...)
CLIENT_ID_IN_USE = 326
NO_DATA_TEXT = "query returned no data"
PACING_TEXT = "pacing violation"

HOST_SETTINGS = "TAPEFLOW_IBKR_HOST and TAPEFLOW_IBKR_PORT"

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class _Plan:
    """How one timeframe is asked of IB."""

    bar_size: str
    use_rth: bool
    piece: timedelta


PLANS = {
    Timeframe.MINUTE: _Plan("1 min", use_rth=False, piece=timedelta(seconds=86_400)),
    Timeframe.DAY: _Plan("1 day", use_rth=True, piece=timedelta(days=364)),
}


@dataclass(frozen=True)
class Piece:
    """One request's share of the window: bars starting in [start, end), asked as `duration`."""

    start: datetime
    end: datetime
    duration: str


def pieces(timeframe: Timeframe, window: Window) -> list[Piece]:
    """The window cut into consecutive requests IB accepts, oldest first."""
    plan = PLANS[Timeframe(timeframe)]
    out: list[Piece] = []
    start = window.start
    while start < window.end:
        end = min(start + plan.piece, window.end)
        out.append(Piece(start, end, _duration(Timeframe(timeframe), end - start)))
        start = end
    return out


def _duration(timeframe: Timeframe, span: timedelta) -> str:
    if timeframe is Timeframe.MINUTE:
        return f"{max(60, math.ceil(span.total_seconds()))} S"
    return f"{math.ceil(span / timedelta(days=1)) + 1} D"


class IbkrSource:
    """MarketData from IB Gateway/TWS at settings.ibkr_host:ibkr_port (client id ibkr_client_id)."""

    name = SOURCE

    def __init__(
        self,
        settings: Settings,
        *,
        connect_timeout_s: float | None = None,
        request_timeout_s: float = 60.0,
        pacing_wait_s: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.host = settings.ibkr_host
        self.port = settings.ibkr_port
        self.client_id = settings.ibkr_client_id
        self.connect_timeout_s = connect_timeout_s if connect_timeout_s is not None else settings.http_timeout_s
        self.request_timeout_s = request_timeout_s
        # IB refuses identical requests within 15 s; waiting that long clears the common case.
        self.pacing_wait_s = pacing_wait_s
        self._sleep = sleep
        hide_accounts_in_ib_logs()

    def __repr__(self) -> str:
        return f"IbkrSource({self.host}:{self.port}, clientId={self.client_id})"

    def bars(self, symbols: Sequence[str] | None, timeframe: Timeframe, window: Window) -> pl.DataFrame:
        """Raw bars for `symbols` starting in `window`, over one gateway connection."""
        if symbols is None:
            raise ValueError("ibkr needs explicit symbols")
        timeframe = Timeframe(timeframe)
        if not symbols:
            return empty_raw_bars()
        _require_sync_caller()
        ib = self._connect()
        try:
            rows: list[dict[str, Any]] = []
            for symbol in symbols:
                rows += self._symbol_rows(ib, symbol, timeframe, window)
        finally:
            ib.disconnect()
        return _frame(rows)

    # ------------------------------------------------------------------ connection
    def _connect(self) -> IB:
        ib = IB()
        ib.RaiseRequestErrors = True  # a refused request raises with its code, not an empty list
        ib.RequestTimeout = self.request_timeout_s
        codes: list[int] = []

        def on_error(req_id: int, code: int, message: str, contract: Contract | None) -> None:
            codes.append(code)

        ib.errorEvent += on_error
        try:
            # readonly + no startup fetches: a data client has no business loading account data.
            ib.connect(self.host, self.port, clientId=self.client_id, timeout=self.connect_timeout_s,
                       readonly=True, fetchFields=StartupFetchNONE)
        except (OSError, asyncio.CancelledError) as exc:  # TimeoutError and ConnectionError are OSErrors
            raise VendorError(self._connect_failure(exc, codes), vendor=SOURCE) from None
        finally:
            ib.errorEvent -= on_error
        return ib

    def _connect_failure(self, exc: BaseException, codes: list[int]) -> str:
        where = f"ibkr: cannot connect to IB Gateway/TWS at {self.host}:{self.port}"
        if CLIENT_ID_IN_USE in codes:
            return (f"{where}: client id {self.client_id} is already in use by another session; "
                    "set TAPEFLOW_IBKR_CLIENT_ID to an unused id")
        if isinstance(exc, ConnectionRefusedError):
            reason = "connection refused"
        elif isinstance(exc, TimeoutError):
            reason = f"no API handshake within {self.connect_timeout_s:g} s"
        else:
            reason = type(exc).__name__
        return (f"{where} ({reason}): check {HOST_SETTINGS} (IB Gateway listens on 4002 paper, "
                "4001 live) and that the gateway is running with its API enabled")

    def _ask(self, what: str, call: Callable[[], T]) -> T:
        """Run one blocking ib_async call; a timeout or a lost socket becomes a VendorError."""
        try:
            return call()
        except TimeoutError:
            raise VendorError(
                f"ibkr: IB Gateway at {self.host}:{self.port} did not answer {what} within "
                f"{self.request_timeout_s:g} s", vendor=SOURCE,
            ) from None
        except (OSError, asyncio.CancelledError):  # ConnectionError("Socket disconnect") and kin
            raise VendorError(
                f"ibkr: lost the connection to IB Gateway at {self.host}:{self.port} during {what}; "
                f"check {HOST_SETTINGS} and the gateway's health", vendor=SOURCE,
            ) from None

    # -------------------------------------------------------------------- requests
    def _symbol_rows(self, ib: IB, symbol: str, timeframe: Timeframe, window: Window) -> list[dict[str, Any]]:
        try:
            contract = self._qualify(ib, symbol)
        except RequestError as exc:
            if exc.code == NO_SECURITY:
                problem = f"IB does not know symbol {symbol} (error {NO_SECURITY})"
            else:
                problem = f"IB refused the contract lookup for {symbol} (error {exc.code}: {exc.message})"
            return [_problem_row(symbol, timeframe, problem, exc)]
        if contract is None:
            problem = f"IB could not qualify {symbol} as one US stock on SMART (unknown or ambiguous)"
            return [_problem_row(symbol, timeframe, problem, None)]
        rows: list[dict[str, Any]] = []
        for piece in pieces(timeframe, window):
            try:
                bars = self._history(ib, contract, timeframe, piece)
            except RequestError as exc:
                # Like a malformed page: say so in one row, stop this symbol, go on with the next.
                problem = f"IB refused historical data for {symbol} (error {exc.code}: {exc.message})"
                rows.append(_problem_row(symbol, timeframe, problem, exc))
                break
            rows += _piece_rows(symbol, timeframe, piece, bars)
        return rows

    def _qualify(self, ib: IB, symbol: str) -> Contract | None:
        contract = Stock(symbol, "SMART", "USD")
        qualified = self._ask(f"the contract lookup for {symbol}", lambda: ib.qualifyContracts(contract))
        found = qualified[0] if qualified else None
        return found if isinstance(found, Contract) else None

    def _history(self, ib: IB, contract: Contract, timeframe: Timeframe, piece: Piece) -> list[BarData]:
        """One piece's bars; no data is an empty list; a pacing violation waits and retries once."""
        plan = PLANS[timeframe]
        what = (f"the historical data request for {contract.symbol} "
                f"({plan.bar_size}, {piece.duration} to {piece.end:%Y-%m-%d %H:%M:%S} UTC)")

        def ask() -> list[BarData]:
            # timeout=0: ib_async's own timeout would return an empty list silently; ours raises.
            return list(ib.reqHistoricalData(
                contract, endDateTime=piece.end, durationStr=piece.duration, barSizeSetting=plan.bar_size,
                whatToShow=WHAT_TO_SHOW, useRTH=plan.use_rth, formatDate=FORMAT_DATE_EPOCH, timeout=0,
            ))

        for attempt in (1, 2):
            try:
                return self._ask(what, ask)
            except RequestError as exc:
                text = exc.message.lower()
                if exc.code == HMDS_ERROR and NO_DATA_TEXT in text:
                    return []  # a weekend or holiday: nothing traded, nothing wrong
                if exc.code != HMDS_ERROR or PACING_TEXT not in text:
                    raise
                if attempt == 2:
                    raise VendorError(
                        f"ibkr: IB still reports a pacing violation (error {HMDS_ERROR}) for {what} after "
                        f"waiting {self.pacing_wait_s:g} s; IB allows about 60 historical requests per "
                        "10 minutes: retry later", vendor=SOURCE,
                    ) from None
                logger.warning("ibkr: pacing violation for %s; retrying once in %g s", what, self.pacing_wait_s)
                self._sleep(self.pacing_wait_s)
        raise AssertionError("unreachable")


# ------------------------------------------------------------------------ rows
def _piece_rows(symbol: str, timeframe: Timeframe, piece: Piece, bars: list[BarData]) -> list[dict[str, Any]]:
    """Rows for the bars that start inside `piece`, in IB's order."""
    rows = [_bar_row(symbol, timeframe, bar) for bar in bars]
    if timeframe is Timeframe.DAY:
        _add_daily_bounds(rows)
    return [r for r in rows if _starts_in(r, timeframe, piece)]


def _bar_row(symbol: str, timeframe: Timeframe, bar: BarData) -> dict[str, Any]:
    fields = {
        "symbol": symbol, "date": bar.date.isoformat(), "open": bar.open, "high": bar.high, "low": bar.low,
        "close": bar.close, "volume": bar.volume, "average": bar.average, "barCount": bar.barCount,
    }
    row: dict[str, Any] = {
        "symbol": symbol, "timeframe": timeframe.value, "ts": None, "end_ts": None,
        "open": bar.open, "high": bar.high, "low": bar.low, "close": bar.close,
        "volume": _known(bar.volume), "vwap": _known(bar.average), "trade_count": _known(bar.barCount),
        "adjustment": ADJUSTMENT, "source": SOURCE,
        "payload": json.dumps(fields, sort_keys=True), "problem": None,
    }
    if timeframe is Timeframe.MINUTE:
        if isinstance(bar.date, datetime) and bar.date.tzinfo is not None:
            row["ts"] = bar.date.astimezone(UTC)
            row["end_ts"] = row["ts"] + MINUTE
        else:
            row["problem"] = f"IB dated a minute bar {bar.date.isoformat()}: not an instant"
    else:
        row["_day"] = _session_day(bar.date)
    return row


def _known(value: float | int) -> float | int | None:
    return None if value == UNSET else value


def _session_day(value: date | datetime) -> date:
    return ny_day(value) if isinstance(value, datetime) else value


def _add_daily_bounds(rows: list[dict[str, Any]]) -> None:
    bounds = daily_bounds(pl.Series([r["_day"] for r in rows], dtype=pl.Date))
    for row, ts, end_ts, problem in zip(rows, bounds["ts"], bounds["end_ts"], bounds["problem"], strict=True):
        row["ts"], row["end_ts"], row["problem"] = ts, end_ts, problem


def _starts_in(row: dict[str, Any], timeframe: Timeframe, piece: Piece) -> bool:
    """Does this bar belong to `piece`? Daily bars of non-sessions are placed at their date's 09:30."""
    start = row["ts"]
    if start is None and timeframe is Timeframe.DAY:
        start = datetime.combine(row["_day"], REGULAR_OPEN, NEW_YORK)
    if start is None:
        return True  # undatable: keep it, so that it reaches the quarantine
    return piece.start <= start < piece.end


def _problem_row(symbol: str, timeframe: Timeframe, problem: str, exc: RequestError | None) -> dict[str, Any]:
    error = {"symbol": symbol}
    if exc is not None:
        error |= {"code": exc.code, "message": exc.message}
    return {
        "symbol": symbol, "timeframe": timeframe.value, "adjustment": ADJUSTMENT, "source": SOURCE,
        "payload": json.dumps(error, sort_keys=True), "problem": problem,
    }


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    empty = empty_raw_bars()
    if not rows:
        return empty
    columns = {name: [row.get(name) for row in rows] for name in empty.columns}
    return pl.DataFrame(columns, schema=empty.schema)


# --------------------------------------------------------------------- hygiene
def _require_sync_caller() -> None:
    """ib_async's blocking API runs its own loop; inside a running one it would fail obscurely."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError("IbkrSource.bars is blocking: call it from synchronous code (a sync task), "
                       "not from inside a running event loop")


# IB account codes: U1234567 (individual), DU1234567 (paper), F/DF... (advisors), I... (brokers).
ACCOUNT_CODE = re.compile(r"\b[A-Z]{1,3}\d{5,9}\b")
IB_LOGGERS = ("ib_async.client", "ib_async.wrapper", "ib_async.ib", "ib_async.Decoder")


class _AccountRedactor(logging.Filter):
    """Masks account codes in ib_async's records (its DEBUG wire dumps carry managedAccounts)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is logging's problem, not ours
            return True
        hidden = ACCOUNT_CODE.sub("<account>", text)
        if hidden != text:
            record.msg, record.args = hidden, ()
        return True


def hide_accounts_in_ib_logs() -> None:
    """Install the redactor on ib_async's loggers, once."""
    for name in IB_LOGGERS:
        log = logging.getLogger(name)
        if not any(isinstance(f, _AccountRedactor) for f in log.filters):
            log.addFilter(_AccountRedactor())
