"""A failed run's cause, severity and dedup key: the user's bad input is quiet only where the
user was watching; anything else, and anything a schedule hits, is critical."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import TypeAdapter, ValidationError

from tapeflow.brokers.live_gate import LiveNotConfirmed
from tapeflow.ops.alerts import Severity
from tapeflow.ops.failures import FailureCause, RunFailure, RunOrigin, cause_of, origin_of, severity_for
from tapeflow.sources import require_source


def raised_by(call) -> BaseException:
    try:
        call()
    except BaseException as exc:
        return exc
    raise AssertionError(f"{call} raised nothing")


def test_causes() -> None:
    bad_source = raised_by(lambda: require_source("nope"))  # tapeflow's own parameter check
    bad_date = raised_by(lambda: TypeAdapter(date).validate_python("2024-13-01"))
    parsed = raised_by(lambda: date.fromisoformat("2024-13-01"))  # raised in C: the caller's frame is the last
    decoder = raised_by(lambda: __import__("json").loads("<html>"))
    assert isinstance(bad_date, ValidationError)
    assert cause_of(bad_source, crashed=False) is FailureCause.BAD_INPUT
    assert cause_of(bad_date, crashed=False) is FailureCause.BAD_INPUT
    assert cause_of(LiveNotConfirmed("set TAPEFLOW_LIVE_CONFIRMED"), crashed=False) is FailureCause.BAD_INPUT
    assert cause_of(parsed, crashed=False) is FailureCause.BAD_INPUT  # so our code parsing a value refuses it
    assert cause_of(decoder, crashed=False) is FailureCause.ERROR  # json.decoder raised it: a vendor's page, not a typo
    assert cause_of(RuntimeError("boom"), crashed=False) is FailureCause.ERROR
    assert cause_of(None, crashed=False) is FailureCause.ERROR
    assert cause_of(KeyboardInterrupt(), crashed=True) is FailureCause.INTERRUPTED
    assert cause_of(SystemExit(1), crashed=True) is FailureCause.CRASHED
    assert cause_of(ValueError("x"), crashed=True) is FailureCause.CRASHED

    class Signal(BaseException):
        pass

    class ParameterError(Exception):
        pass

    assert cause_of(Signal(), crashed=True, interrupts=(Signal,)) is FailureCause.INTERRUPTED
    assert cause_of(ParameterError(), crashed=False, refusals=(ParameterError,)) is FailureCause.BAD_INPUT


@pytest.mark.parametrize(("cause", "origin", "severity"), [
    (FailureCause.BAD_INPUT, RunOrigin.AD_HOC, Severity.INFO),
    (FailureCause.BAD_INPUT, RunOrigin.DEPLOYMENT, Severity.WARNING),
    (FailureCause.BAD_INPUT, RunOrigin.SCHEDULED, Severity.CRITICAL),
    (FailureCause.INTERRUPTED, RunOrigin.AD_HOC, Severity.INFO),
    (FailureCause.INTERRUPTED, RunOrigin.SCHEDULED, Severity.CRITICAL),
    (FailureCause.ERROR, RunOrigin.AD_HOC, Severity.CRITICAL),
    (FailureCause.ERROR, RunOrigin.DEPLOYMENT, Severity.CRITICAL),
    (FailureCause.CRASHED, RunOrigin.AD_HOC, Severity.CRITICAL),
])
def test_severity(cause: FailureCause, origin: RunOrigin, severity: Severity) -> None:
    assert severity_for(cause, origin) is severity


def test_origin_and_key() -> None:
    assert origin_of(None, auto_scheduled=False) is RunOrigin.AD_HOC
    assert origin_of("ingest-bars/replay-daily", auto_scheduled=False) is RunOrigin.DEPLOYMENT
    assert origin_of("ingest-bars/daily-after-close", auto_scheduled=True) is RunOrigin.SCHEDULED
    direct = RunFailure("ingest-bars", None, RunOrigin.AD_HOC, FailureCause.BAD_INPUT, "ValueError")
    scheduled = RunFailure("ingest-bars", "ingest-bars/daily-after-close", RunOrigin.SCHEDULED, FailureCause.ERROR,
                           "VendorError")
    assert direct.key == "flow_failed:ingest-bars:bad_input:ValueError"
    assert scheduled.key == "flow_failed:ingest-bars/daily-after-close:error:VendorError"
    assert scheduled.title == "ingest-bars/daily-after-close failed: error (scheduled run, VendorError)"
    assert (direct.severity, scheduled.severity) == (Severity.INFO, Severity.CRITICAL)
