"""One HTTP policy for every REST vendor: timeouts, retries with backoff and jitter,
429 Retry-After honoured, and errors that name the setting to fix but never a key.

Vendor keys travel in headers or query parameters; requests puts the full URL (query
included) into its exception messages, so no requests exception is ever re-raised as is. A
vendor may quote the request back (a debug page, an error echoing its headers): the keys a
client sends are masked in every answer before anything reads it.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from pydantic import SecretStr

from tapeflow.redact import guard_http_debug_logs, redact_text, redact_url

if TYPE_CHECKING:
    from tapeflow.config import Settings


class VendorError(RuntimeError):
    """A vendor call failed for good (after retries, or a status that retrying cannot fix)."""

    def __init__(self, message: str, *, vendor: str, status: int | None = None) -> None:
        super().__init__(message)
        self.vendor = vendor
        self.status = status


class VendorAuthError(VendorError):
    """The vendor refused the credentials; the message names the setting, never the key."""


def require_key(secret: SecretStr | None, *, vendor: str, setting: str) -> str:
    """The key's value, or VendorAuthError naming the setting that should hold it."""
    key = secret.get_secret_value() if secret is not None else ""
    if not key:
        raise VendorAuthError(f"{vendor} needs {setting} to be set", vendor=vendor)
    return key


def is_transient(exc: BaseException) -> bool:
    """Worth trying again later: a vendor hiccup, not a mistake that fails the same way twice."""
    if isinstance(exc, VendorAuthError):
        return False
    if isinstance(exc, VendorError):
        return exc.status is None or exc.status == 429 or exc.status >= 500
    return isinstance(exc, (ConnectionError, TimeoutError))


@dataclass(frozen=True)
class HttpPolicy:
    """How hard to try: per-request timeout, attempts, exponential backoff with jitter."""

    timeout_s: float = 10.0
    attempts: int = 4
    backoff_s: float = 0.5
    max_delay_s: float = 60.0
    jitter: float = 0.25  # +/- this fraction of each delay, so many clients do not retry in step

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpPolicy:
        """The policy TAPEFLOW_HTTP_TIMEOUT_S and TAPEFLOW_HTTP_ATTEMPTS ask for."""
        return cls(timeout_s=settings.http_timeout_s, attempts=settings.http_attempts)

    def delay(self, attempt: int, retry_after: float | None, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.max_delay_s)
        base = min(self.backoff_s * 2 ** (attempt - 1), self.max_delay_s)
        return min(self.max_delay_s, max(0.0, base * (1 + self.jitter * (2 * rand() - 1))))


@dataclass(frozen=True)
class Page:
    """One answered request: parsed JSON, or the raw text and why it could not be parsed."""

    url: str
    data: Any
    text: str
    problem: str | None = None


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # the HTTP-date form is rare from APIs; fall back to backoff
    return seconds if seconds is not None and seconds >= 0 else None


class VendorHttp:
    """A requests session for one vendor, with the shared retry policy; `secrets` are the keys it
    sends, masked in whatever the vendor answers."""

    def __init__(
        self,
        vendor: str,
        base_url: str,
        *,
        key_setting: str,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        secrets: Sequence[str] = (),
        policy: HttpPolicy = HttpPolicy(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self.key_setting = key_setting
        self.policy = policy
        self._params = dict(params or {})
        self._secrets = [s for s in secrets if s]
        self._sleep = sleep
        self._session = requests.Session()
        self._session.headers.update(headers or {})
        guard_http_debug_logs()

    def __repr__(self) -> str:
        return f"VendorHttp({self.vendor!r}, {redact_url(self.base_url)!r})"

    def close(self) -> None:
        self._session.close()

    def get(self, path_or_url: str, params: Mapping[str, Any] | None = None) -> Page:
        """GET a path under the base URL (or a full URL the vendor handed back, for paging)."""
        url = path_or_url if urlsplit(path_or_url).scheme else f"{self.base_url}/{path_or_url.lstrip('/')}"
        where = f"{self.vendor} {urlsplit(url).path}"
        if _origin(url) != _origin(self.base_url):
            # A paging link to another host would carry our key there.
            raise VendorError(f"{where}: refusing to follow a link to {redact_url(url)}", vendor=self.vendor)
        query = {**self._params, **(params or {})}
        failure, status = "no attempt made", None
        for attempt in range(1, self.policy.attempts + 1):
            response, fatal = None, None
            try:
                response = self._session.get(url, params=query, timeout=self.policy.timeout_s, allow_redirects=False)
            except requests.Timeout:
                failure, status = f"timed out after {self.policy.timeout_s:g} s", None
            except requests.ConnectionError:
                failure, status = "connection failed", None
            except requests.exceptions.ChunkedEncodingError:
                failure, status = "answer cut short", None
            except requests.RequestException as exc:
                fatal = type(exc).__name__
            if fatal is not None:
                # Raised outside the except block: requests' exception (which may quote a key)
                # must not ride along as __context__.
                raise VendorError(f"{where}: request failed ({fatal})", vendor=self.vendor)
            if response is not None:
                status = response.status_code
                if status in (401, 403):
                    raise VendorAuthError(
                        f"{self.vendor} refused the credentials (HTTP {status}): check {self.key_setting}",
                        vendor=self.vendor, status=status,
                    )
                if 200 <= status < 300:
                    return self._page(url, response)
                failure = f"HTTP {status}"
                if status != 429 and status < 500:
                    raise VendorError(f"{where}: {failure}", vendor=self.vendor, status=status)
            if attempt < self.policy.attempts:
                retry_after = _retry_after(response) if response is not None and response.status_code == 429 else None
                self._sleep(self.policy.delay(attempt, retry_after))
        raise VendorError(
            f"{where}: gave up after {self.policy.attempts} attempts ({failure})", vendor=self.vendor, status=status
        )

    def _page(self, url: str, response: requests.Response) -> Page:
        # Masked before parsing, so that no payload, problem or item field quotes a key back.
        text = redact_text(response.text, self._secrets)
        # Only the path is kept for the record: the query may carry a key.
        shown = urlsplit(url).path
        try:
            return Page(url=shown, data=json.loads(text), text=text)
        except ValueError as exc:
            return Page(url=shown, data=None, text=text, problem=f"malformed JSON from {self.vendor}: {exc}")
