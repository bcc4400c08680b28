"""Base for the fake REST news vendors: items the test adds, reset between tests, scripted
faults answered with the vendor's own error body, and a constant-time key check."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

from tests.fakes.vendor_http import FakeVendor, Fault

UTC = UTC


class FakeNewsVendor(FakeVendor):
    """Serves the items in `self.items` (in the order added); subclasses add routes and paging."""

    def __init__(self, api_key: str, max_lifetime: float = 600.0) -> None:
        super().__init__(max_lifetime)
        self.api_key = api_key
        self.items: list[Any] = []

    def reset(self) -> None:
        """Forget items, faults, options and the request log, so that one server serves many tests."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self.items.clear()
            self.reset_options()

    def reset_options(self) -> None:
        """Subclasses put their per-test switches back to the defaults here."""

    def add_items(self, items: list[Any]) -> None:
        self.items.extend(items)

    def error_body(self, status: int) -> Any:
        return {"error": f"scripted {status}"}

    def fail_next(self, status: int, times: int = 1, retry_after: str | None = None, path_prefix: str = "") -> None:
        """As FakeVendor's, with this vendor's error body for that status."""
        body = self.error_body(status)
        text = body if isinstance(body, str) else json.dumps(body)
        with self._lock:
            self._faults += [
                Fault(status=status, retry_after=retry_after, body=text, path_prefix=path_prefix) for _ in range(times)
            ]

    def key_is(self, given: str | None) -> bool:
        return bool(given) and secrets.compare_digest(str(given).encode(), self.api_key.encode())


def instant(text: Any) -> datetime | None:
    """An item's ISO stamp as aware UTC, or None when a test served a broken one."""
    try:
        parsed = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


__all__ = ["FakeNewsVendor", "instant"]
