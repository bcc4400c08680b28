"""VendorHttp, the shared REST policy, against a tiny FakeVendor route on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import traceback
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapeflow.sources.http import (
    HttpPolicy,
    VendorAuthError,
    VendorError,
    VendorHttp,
    is_transient,
)
from tests.fakes.vendor_http import FakeVendor

KEY = "SEKRET-http-5e0c7b12"
VENDOR = "fakevendor"
SETTING = "TAPEFLOW_FAKEVENDOR_API_KEY"
POLICY = HttpPolicy(timeout_s=2.0, attempts=3, backoff_s=0.1, jitter=0.0, max_delay_s=10.0)


class TinyVendor(FakeVendor):
    """One route, `GET /v1/thing`, answering `{"ok": true}`."""

    def __init__(self) -> None:
        super().__init__(max_lifetime=60.0)
        self.route(r"/v1/thing", lambda request: (200, {"ok": True}))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._faults.clear()


@pytest.fixture(scope="module")
def server() -> Iterator[TinyVendor]:
    # One server for the module: each stop costs up to 0.5 s (the stdlib server's poll interval).
    with TinyVendor() as running:
        yield running


@pytest.fixture
def fake(server: TinyVendor) -> TinyVendor:
    server.reset()
    return server


def client(base_url: str, sleeps: list[float] | None = None, policy: HttpPolicy = POLICY) -> VendorHttp:
    """A VendorHttp carrying the key both ways a vendor may want it: query and header."""
    return VendorHttp(
        VENDOR,
        base_url,
        key_setting=SETTING,
        params={"apiKey": KEY},
        headers={"X-Api-Key": KEY},
        policy=policy,
        sleep=sleeps.append if sleeps is not None else (lambda _: None),
    )


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def shown(error: BaseException) -> str:
    """Everything an error shows: text, repr and the traceback as logging would print it."""
    return str(error) + repr(error) + "".join(traceback.format_exception(error))


# -- answers -----------------------------------------------------------------------------


def test_a_good_answer_is_a_page_whose_url_has_no_query(fake):
    page = client(fake.url).get("/v1/thing", {"limit": 5})
    assert (page.data, page.text, page.problem, page.url) == ({"ok": True}, '{"ok": true}', None, "/v1/thing")
    (request,) = fake.requests
    assert request.query == {"apiKey": KEY, "limit": "5"} and request.headers["x-api-key"] == KEY


def test_a_full_url_from_the_vendor_keeps_its_query(fake):
    page = client(fake.url).get(f"{fake.url}/v1/thing?cursor=abc")
    assert page.data == {"ok": True} and page.url == "/v1/thing"
    assert fake.requests[0].query == {"cursor": "abc", "apiKey": KEY}


def test_malformed_json_is_a_page_problem_not_an_error_nor_a_retry(fake):
    fake.malformed_next('{"results": [ {"o": 1.0,')
    sleeps: list[float] = []
    page = client(fake.url, sleeps).get("v1/thing")
    assert page.data is None and page.text == '{"results": [ {"o": 1.0,'
    assert page.problem == "malformed JSON from fakevendor: Expecting property name enclosed in double quotes: line 1 column 25 (char 24)"
    assert sleeps == [] and len(fake.requests) == 1


@pytest.mark.parametrize("elsewhere", ["https://evil.example/v1/thing?cursor=1", "http://127.0.0.1:9/v1/thing"])
def test_a_link_to_another_origin_is_refused_before_any_request(fake, elsewhere):
    # A paging link to another host (or port) would carry the key there.
    with pytest.raises(VendorError) as caught:
        client(fake.url).get(elsewhere)
    host = elsewhere.split("/v1")[0]
    assert str(caught.value) == f"fakevendor /v1/thing: refusing to follow a link to {host}/…"
    assert fake.requests == []


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (VendorError("x", vendor=VENDOR, status=None), True),
        (VendorError("x", vendor=VENDOR, status=429), True),
        (VendorError("x", vendor=VENDOR, status=503), True),
        (VendorError("x", vendor=VENDOR, status=404), False),
        (VendorAuthError("x", vendor=VENDOR, status=401), False),
        (ConnectionError(), True),
        (TimeoutError(), True),
        (ValueError(), False),
    ],
)
def test_is_transient_separates_hiccups_from_mistakes(error, transient):
    assert is_transient(error) is transient


def test_the_client_repr_shows_the_host_only():
    assert repr(client("http://127.0.0.1:9/api/v1")) == "VendorHttp('fakevendor', 'http://127.0.0.1:9/…')"


# -- retries -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retried_with_exponential_backoff(fake, status):
    fake.fail_next(status, times=2)
    sleeps: list[float] = []
    assert client(fake.url, sleeps).get("v1/thing").data == {"ok": True}
    assert sleeps == [0.1, 0.2] and len(fake.requests) == 3


def test_5xx_every_time_gives_up_after_the_attempts(fake):
    fake.fail_next(503, times=3)
    sleeps: list[float] = []
    with pytest.raises(VendorError) as caught:
        client(fake.url, sleeps).get("v1/thing")
    assert str(caught.value) == "fakevendor /v1/thing: gave up after 3 attempts (HTTP 503)"
    assert (caught.value.status, caught.value.vendor) == (503, VENDOR)
    assert sleeps == [0.1, 0.2]  # no sleep after the last attempt


@pytest.mark.parametrize(
    ("retry_after", "slept"),
    [("3", 3.0), ("2.5", 2.5), ("0", 0.0), ("120", 10.0), (None, 0.1), ("-1", 0.1), ("Wed, 21 Oct 2026 07:28:00 GMT", 0.1)],
    ids=["seconds", "fraction", "zero", "capped-by-max-delay", "absent", "negative", "http-date"],
)
def test_429_waits_retry_after_capped_by_max_delay(fake, retry_after, slept):
    fake.fail_next(429, retry_after=retry_after)
    sleeps: list[float] = []
    assert client(fake.url, sleeps).get("v1/thing").data == {"ok": True}
    assert sleeps == [slept]


def test_429_every_time_is_a_vendor_error_with_the_status(fake):
    fake.fail_next(429, times=3, retry_after="1")
    sleeps: list[float] = []
    with pytest.raises(VendorError) as caught:
        client(fake.url, sleeps).get("v1/thing")
    assert str(caught.value) == "fakevendor /v1/thing: gave up after 3 attempts (HTTP 429)"
    assert caught.value.status == 429 and sleeps == [1.0, 1.0]


def test_a_timeout_is_retried(fake):
    fake.delay_next(0.6)
    policy = HttpPolicy(timeout_s=0.2, attempts=2, backoff_s=0.0, jitter=0.0)
    assert client(fake.url, policy=policy).get("v1/thing").data == {"ok": True}
    assert len(fake.requests) == 2


def test_a_timeout_every_time_gives_up(fake):
    fake.delay_next(0.6, times=2)
    policy = HttpPolicy(timeout_s=0.2, attempts=2, backoff_s=0.0, jitter=0.0)
    with pytest.raises(VendorError) as caught:
        client(fake.url, policy=policy).get("v1/thing")
    assert str(caught.value) == "fakevendor /v1/thing: gave up after 2 attempts (timed out after 0.2 s)"
    assert caught.value.status is None
    assert KEY not in shown(caught.value)


def test_connection_refused_is_retried_then_a_vendor_error_without_the_key():
    sleeps: list[float] = []
    with pytest.raises(VendorError) as caught:
        client(f"http://127.0.0.1:{closed_port()}", sleeps).get("v1/thing")
    assert str(caught.value) == "fakevendor /v1/thing: gave up after 3 attempts (connection failed)"
    assert sleeps == [0.1, 0.2]
    # requests' own ConnectionError text carries the URL, query (and key) included.
    assert KEY not in shown(caught.value) and caught.value.__context__ is None


# -- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_name_the_setting_and_are_not_retried(fake, status):
    fake.fail_next(status)
    sleeps: list[float] = []
    with pytest.raises(VendorAuthError) as caught:
        client(fake.url, sleeps).get("v1/thing")
    assert str(caught.value) == f"fakevendor refused the credentials (HTTP {status}): check {SETTING}"
    assert caught.value.status == status and sleeps == [] and len(fake.requests) == 1
    assert KEY not in shown(caught.value)


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_other_4xx_are_not_retried(fake, status):
    fake.fail_next(status)
    sleeps: list[float] = []
    with pytest.raises(VendorError) as caught:
        client(fake.url, sleeps).get("v1/thing")
    assert str(caught.value) == f"fakevendor /v1/thing: HTTP {status}"
    assert type(caught.value) is VendorError and caught.value.status == status
    assert sleeps == [] and len(fake.requests) == 1
    assert KEY not in shown(caught.value)


def test_an_unknown_path_is_a_404_without_the_key(fake):
    with pytest.raises(VendorError) as caught:
        client(fake.url).get("v1/nothing")
    assert str(caught.value) == "fakevendor /v1/nothing: HTTP 404"


def key_with_a_newline() -> VendorHttp:
    """A key pasted with its line end: requests' InvalidHeader quotes the header value, key and all."""
    return VendorHttp(VENDOR, "http://127.0.0.1:9", key_setting=SETTING, headers={"X-Api-Key": f"{KEY}\n"}, policy=POLICY)


def test_a_request_error_that_quotes_the_key_is_not_repeated():
    with pytest.raises(VendorError) as caught:
        key_with_a_newline().get("v1/thing")
    assert str(caught.value) == "fakevendor /v1/thing: request failed (InvalidHeader)"
    assert KEY not in shown(caught.value)


def test_a_request_error_keeps_no_key_anywhere_on_the_exception():
    with pytest.raises(VendorError) as caught:
        key_with_a_newline().get("v1/thing")
    assert KEY not in str(caught.value.__context__)


# -- delays ------------------------------------------------------------------------------

JITTERY = HttpPolicy(backoff_s=1.0, jitter=0.25, max_delay_s=60.0)


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [(1, 0.0, 0.75), (1, 0.5, 1.0), (1, 0.75, 1.125), (2, 0.5, 2.0), (3, 0.0, 3.0), (7, 0.5, 60.0)],
)
def test_backoff_doubles_with_jitter_of_a_quarter_either_way(attempt, rand, expected):
    assert JITTERY.delay(attempt, None, rand=lambda: rand) == pytest.approx(expected)


@given(attempt=st.integers(1, 12), rand=st.floats(0.0, 1.0, exclude_max=True))
def test_backoff_stays_within_its_jitter_band(attempt, rand):
    base = min(2.0 ** (attempt - 1), 60.0)
    assert base * 0.75 <= JITTERY.delay(attempt, None, rand=lambda: rand) < base * 1.25 + 1e-9


def test_retry_after_wins_over_backoff_and_is_capped():
    assert JITTERY.delay(3, 5.0, rand=lambda: 0.0) == 5.0
    assert JITTERY.delay(1, 500.0) == 60.0
    assert JITTERY.delay(1, 0.0) == 0.0


def test_a_delay_is_never_negative_even_with_wild_jitter():
    assert HttpPolicy(backoff_s=1.0, jitter=3.0).delay(1, None, rand=lambda: 0.0) == 0.0


def test_backoff_never_exceeds_max_delay():
    assert JITTERY.delay(10, None, rand=lambda: 0.999) <= JITTERY.max_delay_s


# -- a body cut short --------------------------------------------------------------------


def test_a_body_cut_short_is_retried():
    answers = [
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"ok": tr',
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{"ok": true}',
    ]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(5)

        def serve() -> None:
            for answer in answers:
                connection, _ = listener.accept()
                with connection:
                    connection.recv(65536)
                    connection.sendall(answer)

        threading.Thread(target=serve, daemon=True).start()
        port = listener.getsockname()[1]
        assert client(f"http://127.0.0.1:{port}").get("v1/thing").data == {"ok": True}

