"""tapeflow's HTTP policy for alpaca-py's REST clients (bars and news), and their errors.

alpaca-py sets no timeout and waits a fixed time between its retries. `HttpPolicyMixin`
overrides the clients' documented request hook `_one_request`: a timeout on every request,
the shared `HttpPolicy` waits between the SDK's retries (Retry-After, else X-RateLimit-Reset,
else backoff with jitter), timeouts and connection failures retried like 429/5xx, a body that
is not JSON raised as `MalformedPage`, and errors that name no URL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from alpaca.common.exceptions import APIError, RetryException

from tapeflow.sources.http import HttpPolicy, VendorAuthError, VendorError

VENDOR = "alpaca"
MESSAGE_LIMIT = 300
# 429 and 504 are alpaca-py's defaults; other 5xx are just as transient.
RETRY_STATUSES = (429, 500, 502, 503, 504)


class MalformedPage(Exception):
    """A 200 answer alpaca-py could not use: not JSON, or not the expected structure."""

    def __init__(self, path: str, text: str, detail: str) -> None:
        super().__init__(detail)
        self.path, self.text, self.detail = path, text, detail


class HttpPolicyMixin:
    """An alpaca-py REST client run by an `HttpPolicy`; listed before the SDK client in the bases."""

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        url: str,
        policy: HttpPolicy,
        sleep: Callable[[float], None],
        clock: Callable[[], datetime],
    ) -> None:
        super().__init__(api_key, secret_key, raw_data=True, url_override=url)
        # The SDK's clients do not pass RESTClient's retry arguments through, and RESTClient
        # ignores 0 for both; so the attributes they would set are set here.
        self._retry = policy.attempts - 1
        self._retry_wait = 0  # the wait happens in _one_request, by the policy
        self._retry_codes = list(RETRY_STATUSES)
        self.policy = policy
        self._pause, self._clock = sleep, clock
        self._response: requests.Response | None = None
        self._session.hooks["response"].append(self._remember)

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._response = response

    def _one_request(self, method: str, url: str, opts: dict, retry: int) -> Any:
        """One attempt of the SDK's retry loop (`retry` = retries left), with a timeout."""
        attempt = self._retry - retry + 1
        path = urlsplit(url).path
        self._response = None
        try:
            data = super()._one_request(method, url, {**opts, "timeout": self.policy.timeout_s}, retry)
        except RetryException:
            # The SDK saw a status in _retry_codes and will call again after time.sleep(0).
            self._pause(self.policy.delay(attempt, self._retry_after()))
            raise
        except requests.JSONDecodeError as exc:
            raise MalformedPage(path, self.text(), f"malformed JSON from {VENDOR}: {exc}") from None
        except requests.Timeout:
            failure = f"timed out after {self.policy.timeout_s:g} s"
        except requests.ConnectionError:
            failure = "connection failed"
        except requests.RequestException as exc:
            # requests' own messages carry the URL; only the exception's name is kept.
            raise VendorError(f"{VENDOR} {path}: request failed ({type(exc).__name__})", vendor=VENDOR) from None
        else:
            return self._take_page(path, data)
        if retry > 0:
            self._pause(self.policy.delay(attempt, None))
            raise RetryException() from None
        raise VendorError(f"{VENDOR} {path}: gave up after {attempt} attempts ({failure})", vendor=VENDOR)

    def _take_page(self, path: str, data: Any) -> Any:
        """What the SDK gets for a good page; a client that checks or keeps pages does so here."""
        return data

    def text(self) -> str:
        """The body of the last answer."""
        return self._response.text if self._response is not None else ""

    def _retry_after(self) -> float | None:
        """Seconds the vendor asked us to wait: Retry-After, else until X-RateLimit-Reset."""
        headers = self._response.headers if self._response is not None else {}
        for name, relative in (("Retry-After", True), ("X-RateLimit-Reset", False)):
            try:
                value = float(headers[name])
            except (KeyError, ValueError):
                continue
            return max(0.0, value if relative else value - self._clock().timestamp())
        return None


def vendor_error(exc: APIError, *, attempts: int, check: str, scrub: Callable[[str], str]) -> VendorError:
    """alpaca-py's APIError as VendorError / VendorAuthError (naming `check`), without URL or keys."""
    status = exc.status_code
    # Scrubbed before it is shortened: a cut through a key would leave its head unmasked.
    message = error_message(scrub(str(exc)))
    if status in (401, 403):
        return VendorAuthError(
            f"{VENDOR} refused the credentials (HTTP {status}: {message}): check {check}",
            vendor=VENDOR, status=status,
        )
    path = urlsplit(exc.request.url).path if exc.request is not None else "request"
    if status in RETRY_STATUSES:
        return VendorError(
            f"{VENDOR} {path}: gave up after {attempts} attempts (HTTP {status}: {message})",
            vendor=VENDOR, status=status,
        )
    return VendorError(f"{VENDOR} {path}: HTTP {status}: {message}", vendor=VENDOR, status=status)


def error_message(body: str) -> str:
    """The `message` of an Alpaca error body, else the body's text, shortened."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    text = parsed["message"] if isinstance(parsed, dict) and isinstance(parsed.get("message"), str) else body
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + "…"


__all__ = ["RETRY_STATUSES", "HttpPolicyMixin", "MalformedPage", "error_message", "vendor_error"]
