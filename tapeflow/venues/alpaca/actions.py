"""Alpaca corporate actions through alpaca-py's `CorporateActionsClient` (the real SDK), as raw batches.

Wire format (alpaca-py 0.44: `CorporateActionsClient`, `CorporateActionsRequest`, the models in
`alpaca.data.models.corporate_actions`, and its test of the endpoint):

    GET {alpaca_data_url}/v1/corporate-actions?symbols=A,B&types=forward_split,...
                                              &start=YYYY-MM-DD&end=YYYY-MM-DD&limit=1000&sort=asc
                                              [&page_token=<opaque>]
        headers APCA-API-KEY-ID / APCA-API-SECRET-KEY (alpaca-py sends them)
    -> {"corporate_actions": {
          "forward_splits":  [{"id", "symbol", "cusip", "new_rate", "old_rate", "process_date",
                               "ex_date", "record_date", "payable_date", "due_bill_redemption_date"}],
          "reverse_splits":  [{"id", "symbol", "old_cusip", "new_cusip", "new_rate", "old_rate",
                               "process_date", "ex_date", "record_date", "payable_date"}],
          "cash_dividends":  [{"id", "symbol", "cusip", "rate", "special", "foreign", "process_date",
                               "ex_date", "record_date", "payable_date", ...}],
          "spin_offs":       [{"id", "source_symbol", "source_cusip", "source_rate", "new_symbol",
                               "new_cusip", "new_rate", "process_date", "ex_date", ...}],
          "name_changes":    [{"id", "old_symbol", "old_cusip", "new_symbol", "new_cusip", "process_date"}],
          "worthless_removals": [{"id", "symbol", "cusip", "process_date"}], ...},
        "next_page_token": "<opaque>" | null}

Rows: a forward split is a split and a reverse split a reverse split, ratio = new_rate /
old_rate; a cash dividend's rate is its amount, a special distribution when `special`; a
spin-off is the source symbol's, new_symbol the spun-off one, ratio = new_rate / source_rate
(new shares per source share), price_factor left null; a name change is a symbol change of
old_symbol; a worthless removal a delisting. ex_date is the item's ex_date, else its
process_date. Other types (stock dividends, mergers, unit splits, redemptions, rights) have no
ActionKind and are not asked for; one the vendor sends anyway comes back with a problem.

knowable_at is the fetch time (`fetched_at`): Alpaca dates no announcement, so an action is
known only from when tapeflow saw it.

Pages are fetched with the client's raw `get`, as for news: `get_corporate_actions` merges all
pages and stops at `limit` actions in all, while here each page keeps its own `fetched_at`, a
page that cannot be read leaves the earlier ones in, and a repeated cursor ends the paging
with a problem row. The HTTP side is `tapeflow.venues.alpaca.http`'s, as for bars and news.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
from alpaca.common.exceptions import APIError
from alpaca.data.enums import CorporateActionsType
from alpaca.data.historical.corporate_actions import CorporateActionsClient
from alpaca.data.requests import CorporateActionsRequest

from tapeflow.config import Settings
from tapeflow.model import ActionKind
from tapeflow.redact import redact_text, redact_url
from tapeflow.sources.action_rows import ActionFields, action_row, raw_actions
from tapeflow.sources.http import HttpPolicy, require_key
from tapeflow.venues.alpaca.bars import CREDENTIALS, KEY_SETTING, PAGE_TEXT_LIMIT, SECRET_SETTING
from tapeflow.venues.alpaca.http import HttpPolicyMixin, MalformedPage, vendor_error

SOURCE = "alpaca"
PATH = "/corporate-actions"  # under the client's /v1
PAGE_LIMIT = 1000  # alpaca-py's page size for this endpoint
# start/end bound an action's process date (Alpaca's reference only says "the interval"); a
# dividend is processed on its payable date, weeks after its ex-date. So the interval asked
# runs this far past `last`, and rows are kept by ex-date.
PROCESS_LAG = timedelta(days=90)

Row = dict[str, Any]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _splits(kind: ActionKind) -> Callable[[ActionFields], Row]:
    def read(fields: ActionFields) -> Row:
        return {"symbol": fields.text("symbol"), "kind": kind.value, "ratio": fields.ratio("new_rate", "old_rate")}

    return read


def _cash_dividend(fields: ActionFields) -> Row:
    special = fields.item.get("special")
    if not isinstance(special, bool):
        fields.note(f"special is not true or false: {repr(special)[:60]}")
    kind = ActionKind.SPECIAL_DISTRIBUTION if special is True else ActionKind.CASH_DIVIDEND
    return {"symbol": fields.text("symbol"), "kind": kind.value, "amount": fields.number("rate")}


def _spin_off(fields: ActionFields) -> Row:
    return {"symbol": fields.text("source_symbol"), "kind": ActionKind.SPIN_OFF.value,
            "new_symbol": fields.text("new_symbol"), "ratio": fields.ratio("new_rate", "source_rate")}


def _name_change(fields: ActionFields) -> Row:
    return {"symbol": fields.text("old_symbol"), "kind": ActionKind.SYMBOL_CHANGE.value,
            "new_symbol": fields.text("new_symbol")}


def _worthless_removal(fields: ActionFields) -> Row:
    return {"symbol": fields.text("symbol"), "kind": ActionKind.DELISTING.value}


# The response's bucket -> (the type asked for, its reader).
TYPES: dict[str, tuple[CorporateActionsType, Callable[[ActionFields], Row]]] = {
    "forward_splits": (CorporateActionsType.FORWARD_SPLIT, _splits(ActionKind.SPLIT)),
    "reverse_splits": (CorporateActionsType.REVERSE_SPLIT, _splits(ActionKind.REVERSE_SPLIT)),
    "cash_dividends": (CorporateActionsType.CASH_DIVIDEND, _cash_dividend),
    "spin_offs": (CorporateActionsType.SPIN_OFF, _spin_off),
    "name_changes": (CorporateActionsType.NAME_CHANGE, _name_change),
    "worthless_removals": (CorporateActionsType.WORTHLESS_REMOVAL, _worthless_removal),
}


class _ActionsClient(HttpPolicyMixin, CorporateActionsClient):
    """alpaca-py's corporate-actions client with tapeflow's HTTP policy (as the bars client has)."""


class AlpacaActions:
    """ActionSource over Alpaca's corporate actions (keys from TAPEFLOW_ALPACA_API_KEY / _SECRET_KEY)."""

    name = SOURCE

    def __init__(
        self,
        settings: Settings,
        *,
        policy: HttpPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = _utc_now,
        symbols_per_request: int = 100,
    ) -> None:
        key = require_key(settings.alpaca_api_key, vendor=SOURCE, setting=KEY_SETTING)
        secret = require_key(settings.alpaca_secret_key, vendor=SOURCE, setting=SECRET_SETTING)
        if symbols_per_request < 1:
            raise ValueError("symbols_per_request must be at least 1")
        self.url = settings.alpaca_data_url
        self.policy = policy or HttpPolicy.from_settings(settings)
        self.symbols_per_request = symbols_per_request
        self._now = now
        self._secrets = [key, secret]
        self._client = _ActionsClient(key, secret, self.url, self.policy, sleep, now)

    def __repr__(self) -> str:
        return f"AlpacaActions(url={redact_url(self.url)!r})"

    def close(self) -> None:
        self._client._session.close()

    def actions(self, symbols: Sequence[str] | None, first: date, last: date) -> pl.DataFrame:
        """Actions of `symbols` (None: all) whose ex-date (else process date) lies in first..last."""
        if last < first:
            raise ValueError(f"last day {last} is before first day {first}")
        wanted = list(dict.fromkeys(symbols)) if symbols is not None else None
        size = self.symbols_per_request
        batches = [None] if wanted is None else [wanted[i : i + size] for i in range(0, len(wanted), size)]
        rows = [row for batch in batches for row in self._batch(batch, first, last)]
        return raw_actions(rows, first, last)

    def _batch(self, symbols: list[str] | None, first: date, last: date) -> list[Row]:
        """Every page for one batch of symbols."""
        request = CorporateActionsRequest(
            symbols=symbols, types=[kind for kind, _ in TYPES.values()],
            start=first, end=last + PROCESS_LAG, limit=PAGE_LIMIT,
        )
        query = request.to_request_fields()
        for name in ("symbols", "types"):  # comma-joined, as get_corporate_actions sends them
            if name in query:
                query[name] = ",".join(query[name])
        rows: list[Row] = []
        tokens: set[str] = set()
        pages = 0
        while True:
            try:
                data = self._call(lambda: self._client.get(PATH, dict(query)))
            except MalformedPage as page:
                rows.append(self._page_row(page.text, f"{page.detail} ({page.path}, after {pages} good pages)"))
                break
            fetched_at = self._now()
            problem = _page_problem(data)
            if problem is not None:
                problem = f"unexpected response from {SOURCE}: {problem} (after {pages} good pages)"
                rows.append(self._page_row(self._client.text(), problem))
                break
            pages += 1
            rows += [self._item_row(bucket, item, fetched_at)
                     for bucket, items in data["corporate_actions"].items() for item in items]
            token = data.get("next_page_token")
            if token is None:
                break
            if token in tokens:
                seen = json.dumps({"next_page_token": token, "pages": pages})
                rows.append(self._page_row(seen, f"{SOURCE} sent the same page token twice; paging stopped after {pages} pages"))
                break
            tokens.add(token)
            query["page_token"] = token
        return rows

    def _item_row(self, bucket: str, item: Any, fetched_at: datetime) -> Row:
        """One vendor item as a raw row; its payload names its type as alpaca-py's models do."""
        shown = {**item, "corporate_action_type": bucket} if isinstance(item, dict) else {
            "corporate_action_type": bucket, "item": item}
        payload = self._scrub(json.dumps(shown, sort_keys=True, default=str))
        if not isinstance(item, dict):
            return action_row(SOURCE, fetched_at, payload, f"{SOURCE} {bucket} item is not a JSON object")
        known = TYPES.get(bucket)
        if known is None:
            return action_row(SOURCE, fetched_at, payload, f"{SOURCE} type {bucket!r} has no tapeflow action kind")
        fields = ActionFields(item)
        row = known[1](fields)
        ex_date = fields.day("ex_date") if item.get("ex_date") is not None else fields.day("process_date")
        problem = fields.problem()  # it may quote a vendor value, so it is scrubbed as the payload is
        return action_row(SOURCE, fetched_at, payload, problem and self._scrub(problem), ex_date=ex_date, **row)

    def _page_row(self, text: str, problem: str) -> Row:
        """One row for a page that could not be read: its text, and why."""
        return action_row(SOURCE, self._now(), self._scrub(text[:PAGE_TEXT_LIMIT]), self._scrub(problem))

    def _call(self, fetch: Callable[[], Any]) -> Any:
        """Run an SDK call; its APIError becomes VendorError / VendorAuthError, keys never shown."""
        try:
            return fetch()
        except APIError as exc:
            error = vendor_error(exc, attempts=self.policy.attempts, check=CREDENTIALS, scrub=self._scrub)
        raise error  # outside the except block: the SDK's exception does not ride along

    def _scrub(self, text: str) -> str:
        return redact_text(text, self._secrets)


def _page_problem(data: Any) -> str | None:
    """What is wrong with a page's structure, or None."""
    if not isinstance(data, dict):
        return f"the page is {type(data).__name__}, not an object"
    actions = data.get("corporate_actions")
    if not isinstance(actions, dict):
        return 'the page has no "corporate_actions" object'
    if not all(isinstance(items, list) for items in actions.values()):
        return '"corporate_actions" holds something other than a list per type'
    if not isinstance(data.get("next_page_token"), str | None):
        return '"next_page_token" is neither text nor null'
    return None


__all__ = ["AlpacaActions"]
