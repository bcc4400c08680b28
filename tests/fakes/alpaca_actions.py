"""A fake of Alpaca's corporate-actions endpoint, for driving the REAL alpaca-py
`CorporateActionsClient` over loopback.

Wire format (alpaca-py 0.44: `CorporateActionsClient`, `CorporateActionsRequest`,
`CorporateActionsType` and the models in `alpaca.data.models.corporate_actions`):

    GET /v1/corporate-actions?symbols=A,B&types=forward_split,cash_dividend,...
                              &start=YYYY-MM-DD&end=YYYY-MM-DD&limit=1..1000&sort=asc|desc
                              [&page_token=<opaque>]
        -> {"corporate_actions": {"forward_splits": [...], "cash_dividends": [...], ...},
            "next_page_token": "<opaque>" | null}

`start` and `end` (default: today) are inclusive bounds on an item's `process_date`, as a
third-party description of the API has it; `types` (default: all) names each bucket in the
singular. `symbols` matches any of the item's symbol fields. Matching items, in process-date
order, are cut into pages of min(limit, page_cap), each page grouping its items by bucket.
Credentials, scripted errors (429 with Retry-After) and the 401/403 answers are
`AlpacaDataFake`'s (the same data host). Items are served as the test stored them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from tests.fakes.alpaca_data import AlpacaDataFake, _Invalid, _offset, _token
from tests.fakes.vendor_http import Request

PATH = "/v1/corporate-actions"
MAX_LIMIT = 1000
TYPES = (
    "reverse_split", "forward_split", "unit_split", "cash_dividend", "stock_dividend", "spin_off", "cash_merger",
    "stock_merger", "stock_and_cash_merger", "redemption", "name_change", "worthless_removal", "rights_distribution",
)
SYMBOL_FIELDS = ("symbol", "source_symbol", "new_symbol", "old_symbol", "acquirer_symbol", "acquiree_symbol")
MALFORMED_ACTIONS_PAGE = '{"corporate_actions": {"forward_splits": [{"symbol": "AAPL", "new_rate": 4,'


def forward_split(symbol: str, ex_date: str, new_rate: float, old_rate: float, **extra: Any) -> dict[str, Any]:
    item = {"id": "0b1d2c3e-0000-4000-8000-000000000001", "symbol": symbol, "cusip": "037833100",
            "new_rate": new_rate, "old_rate": old_rate, "process_date": ex_date, "ex_date": ex_date,
            "record_date": ex_date, "payable_date": ex_date}
    return {**item, **extra}


def reverse_split(symbol: str, ex_date: str, new_rate: float, old_rate: float, **extra: Any) -> dict[str, Any]:
    item = {"id": "0b1d2c3e-0000-4000-8000-000000000002", "symbol": symbol, "old_cusip": "000000001",
            "new_cusip": "000000002", "new_rate": new_rate, "old_rate": old_rate, "process_date": ex_date,
            "ex_date": ex_date, "record_date": ex_date, "payable_date": ex_date}
    return {**item, **extra}


def cash_dividend(
    symbol: str, ex_date: str, rate: float, *, special: bool = False, process_date: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A cash dividend, processed (paid) on `process_date`, by default its ex-date."""
    item = {"id": "0b1d2c3e-0000-4000-8000-000000000003", "symbol": symbol, "cusip": "000000003", "rate": rate,
            "special": special, "foreign": False, "process_date": process_date or ex_date, "ex_date": ex_date,
            "record_date": ex_date, "payable_date": process_date or ex_date}
    return {**item, **extra}


def spin_off(
    source_symbol: str, new_symbol: str, ex_date: str, source_rate: float, new_rate: float, **extra: Any
) -> dict[str, Any]:
    item = {"id": "0b1d2c3e-0000-4000-8000-000000000004", "source_symbol": source_symbol,
            "source_cusip": "000000004", "source_rate": source_rate, "new_symbol": new_symbol,
            "new_cusip": "000000005", "new_rate": new_rate, "process_date": ex_date, "ex_date": ex_date,
            "record_date": ex_date, "payable_date": ex_date}
    return {**item, **extra}


def name_change(old_symbol: str, new_symbol: str, process_date: str, **extra: Any) -> dict[str, Any]:
    item = {"id": "0b1d2c3e-0000-4000-8000-000000000005", "old_symbol": old_symbol, "old_cusip": "000000006",
            "new_symbol": new_symbol, "new_cusip": "000000007", "process_date": process_date}
    return {**item, **extra}


def worthless_removal(symbol: str, process_date: str, **extra: Any) -> dict[str, Any]:
    item = {"id": "0b1d2c3e-0000-4000-8000-000000000006", "symbol": symbol, "cusip": "000000008",
            "process_date": process_date}
    return {**item, **extra}


class AlpacaActionsFake(AlpacaDataFake):
    """Alpaca's data host with the corporate-actions endpoint; `page_cap` caps the page size."""

    def __init__(
        self, api_key: str = "test-key-id", secret_key: str = "test-secret-key", *,
        page_cap: int = MAX_LIMIT, max_lifetime: float = 600.0,
    ) -> None:
        super().__init__(api_key, secret_key, page_cap=page_cap, max_lifetime=max_lifetime)
        self._actions: list[tuple[str, Any]] = []
        self._repeat_tokens = 0
        self.route(PATH, self._get_actions)

    def reset(self, *, page_cap: int | None = None, sip_allowed: bool = True) -> None:
        super().reset(page_cap=page_cap, sip_allowed=sip_allowed)
        with self._data_lock:
            self._actions.clear()
        with self._lock:
            self._repeat_tokens = 0

    def add(self, bucket: str, *items: Any) -> None:
        """Store items under a response bucket ("forward_splits", ...; any name, for tests of unknown ones)."""
        with self._data_lock:
            self._actions += [(bucket, item) for item in items]

    def repeat_token_next(self, times: int = 1) -> None:
        """The next pages asked for with a token send that token back (a cursor that never moves)."""
        with self._lock:
            self._repeat_tokens += times

    def _get_actions(self, request: Request) -> tuple[int, Any]:
        refused = self._authorize(request)
        if refused:
            return refused
        q = request.query
        try:
            symbols = {s for s in q.get("symbols", "").split(",") if s}
            types = {t for t in q.get("types", "").split(",") if t} or set(TYPES)
            if types - set(TYPES):
                raise _Invalid(f"invalid types: {','.join(sorted(types - set(TYPES)))}")
            start, end = _day(q, "start"), _day(q, "end")
            limit = _limit(q)
            if q.get("sort", "asc") not in ("asc", "desc"):
                raise _Invalid(f"invalid sort: {q['sort']}")
            offset = _offset(q.get("page_token"))
        except _Invalid as exc:
            return 422, {"message": str(exc)}
        with self._data_lock:
            matching = [
                (bucket, item) for bucket, item in self._actions
                if (bucket.removesuffix("s") in types or bucket.removesuffix("s") not in TYPES)
                and (not symbols or symbols & _symbols_of(item)) and _processed_within(item, start, end)
            ]
        matching.sort(key=lambda pair: str(_field(pair[1], "process_date")), reverse=q.get("sort") == "desc")
        size = max(1, min(limit, self.page_cap))
        chunk = matching[offset : offset + size]
        page: dict[str, list[Any]] = {}
        for bucket, item in chunk:
            page.setdefault(bucket, []).append(item)
        with self._lock:
            repeat = self._repeat_tokens > 0 and bool(q.get("page_token"))
            self._repeat_tokens -= repeat
        token = q["page_token"] if repeat else (_token(offset + size) if offset + size < len(matching) else None)
        return 200, {"corporate_actions": page, "next_page_token": token}


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else None


def _symbols_of(item: Any) -> set[str]:
    return {value for name in SYMBOL_FIELDS if isinstance(value := _field(item, name), str)}


def _processed_within(item: Any, start: date, end: date) -> bool:
    try:
        processed = date.fromisoformat(str(_field(item, "process_date")))
    except ValueError:
        return True  # an item the test made undatable on purpose is always served
    return start <= processed <= end


def _day(q: dict[str, str], name: str) -> date:
    if name not in q:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(q[name])
    except ValueError:
        raise _Invalid(f"invalid {name}: {q[name]}") from None


def _limit(q: dict[str, str]) -> int:
    try:
        limit = int(q.get("limit", str(MAX_LIMIT)))
    except ValueError:
        raise _Invalid(f"invalid limit: {q['limit']}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise _Invalid(f"invalid limit: {limit}")
    return limit


__all__ = [
    "AlpacaActionsFake", "MALFORMED_ACTIONS_PAGE", "cash_dividend", "forward_split", "name_change", "reverse_split",
    "spin_off", "worthless_removal",
]
