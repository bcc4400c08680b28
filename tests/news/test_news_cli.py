"""`tapeflow news ingest` and `news stream` name a missing vendor key, or an unknown source, in
one line (exit 2) before Prefect starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tapeflow.cli.news as news_cli
from tapeflow.cli.main import app

runner = CliRunner()


@pytest.fixture
def no_prefect(monkeypatch):
    """Fail the test if the command reaches for Prefect."""
    def started(*_args, **_kwargs):
        raise AssertionError("Prefect was started")

    monkeypatch.setattr(news_cli, "running_flows", started)


@pytest.mark.usefixtures("tapeflow_home", "no_prefect")
@pytest.mark.parametrize("args, env, said", [
    (["--source", "polygon"], {}, "polygon needs TAPEFLOW_POLYGON_API_KEY to be set"),
    ([], {"TAPEFLOW_NEWS_SOURCE": "alpaca"}, "alpaca needs TAPEFLOW_ALPACA_API_KEY to be set"),
    (["--source", "reuters"], {}, "--source must be one of replay, alpaca, polygon, benzinga, marketaux, tiingo, "
                                  "got reuters: e.g. --source replay"),
    ([], {"TAPEFLOW_NEWS_SOURCE": "reuters"}, "TAPEFLOW_NEWS_SOURCE must be one of replay"),
])
def test_ingest_refuses_a_missing_key_or_an_unknown_source_in_one_line(args, env, said):
    result = runner.invoke(app, ["news", "ingest", *args], env=env)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(said) and len(result.stderr.strip().splitlines()) == 1


def test_stream_without_alpaca_keys_says_so_before_prefect_starts(tmp_path: Path):
    home = tmp_path / "home"
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("TAPEFLOW_", "PREFECT_HOME"))} | {"TAPEFLOW_HOME": str(home)}
    tapeflow = Path(sys.executable).parent / "tapeflow"  # the script users run, through its entry point
    result = subprocess.run([str(tapeflow), "news", "stream", "--minutes", "1"], capture_output=True, text=True,
                            timeout=120, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == "alpaca needs TAPEFLOW_ALPACA_API_KEY to be set" and not result.stdout
    assert not (home / "prefect").exists()  # Prefect's home is made when it starts
