"""`report_url` builds the link a flow run gives its report from the URL `tapeflow serve` sets."""

from tapeflow.config import REPORTS_URL_ENV, report_url


def test_report_url_joins_the_served_base_and_the_run(monkeypatch):
    monkeypatch.setenv(REPORTS_URL_ENV, "http://127.0.0.1:4201/")
    assert report_url("bt-2011 03") == "http://127.0.0.1:4201/bt-2011%2003/report.html"
    monkeypatch.setenv(REPORTS_URL_ENV, "http://127.0.0.1:4201")  # a hand-set base without its slash
    assert report_url("r1") == "http://127.0.0.1:4201/r1/report.html"


def test_no_served_reports_no_link(monkeypatch):
    monkeypatch.delenv(REPORTS_URL_ENV, raising=False)
    assert report_url("r1") is None
