"""Tests for tapeflow.config: defaults, env and .env precedence, and secrets that never show."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from tapeflow.config import Settings, load_settings
from tapeflow.model import Mode

ALPACA_SECRET = "alpaca-SECRET-7f3k9q"
WEBHOOK_URL = "https://hooks.example.test/T0KEN-zq81x"


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (no .env) and no TAPEFLOW_* variables."""
    for name in [n for n in os.environ if n.startswith("TAPEFLOW_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_default_mode_is_paper(clean_env: Path) -> None:
    s = Settings()
    assert s.mode is Mode.PAPER
    assert s.lock_timeout_s == 30.0
    assert s.alpaca_secret_key is None and s.alert_webhook_url is None


def test_mode_live_from_env(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAPEFLOW_MODE", "live")
    assert Settings().mode is Mode.LIVE


def test_invalid_mode_names_the_field(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAPEFLOW_MODE", "yolo")
    with pytest.raises(ValidationError) as info:
        Settings()
    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [("mode",)]
    assert errors[0]["input"] == "yolo"


def test_dotenv_in_working_directory_is_read(clean_env: Path) -> None:
    (clean_env / ".env").write_text("TAPEFLOW_MODE=live\nTAPEFLOW_LOCK_TIMEOUT_S=7.5\n", encoding="utf-8")
    s = Settings()
    assert s.mode is Mode.LIVE
    assert s.lock_timeout_s == 7.5


def test_environment_beats_dotenv(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / ".env").write_text("TAPEFLOW_MODE=live\nTAPEFLOW_LOCK_TIMEOUT_S=7.5\n", encoding="utf-8")
    monkeypatch.setenv("TAPEFLOW_MODE", "paper")
    s = Settings()
    assert s.mode is Mode.PAPER
    assert s.lock_timeout_s == 7.5  # not overridden, so .env still applies


def test_explicit_override_beats_environment(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAPEFLOW_MODE", "live")
    assert load_settings(mode="paper").mode is Mode.PAPER


def test_warehouse_path_is_absolute_under_home(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = clean_env / "tf-home"
    monkeypatch.setenv("TAPEFLOW_HOME", str(home))
    path = Settings().warehouse_path
    assert path.is_absolute()
    assert path == home.resolve() / "tapeflow.duckdb"


def test_relative_home_resolves_against_working_directory(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAPEFLOW_HOME", "rel/home")
    path = Settings().warehouse_path
    assert path.is_absolute()
    assert path == clean_env.resolve() / "rel" / "home" / "tapeflow.duckdb"


@pytest.fixture
def secret_env(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAPEFLOW_ALPACA_SECRET_KEY", ALPACA_SECRET)
    monkeypatch.setenv("TAPEFLOW_ALERT_WEBHOOK_URL", WEBHOOK_URL)


def assert_no_secret(text: str) -> None:
    assert ALPACA_SECRET not in text
    assert WEBHOOK_URL not in text
    assert "T0KEN-zq81x" not in text


def test_secrets_never_show(secret_env: None, caplog: pytest.LogCaptureFixture) -> None:
    s = Settings()
    for text in (repr(s), str(s), s.model_dump_json(), f"{s}", f"{s!r}"):
        assert_no_secret(text)
    assert "**********" in s.model_dump_json()

    logger = logging.getLogger("tapeflow.test_config")
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("%s", s)
    assert len(caplog.records) == 1
    assert "alpaca_secret_key" in caplog.records[0].getMessage()
    assert_no_secret(caplog.records[0].getMessage())
    assert_no_secret(caplog.text)


def test_secret_values_are_still_available(secret_env: None) -> None:
    s = Settings()
    assert s.alpaca_secret_key is not None and s.alert_webhook_url is not None
    assert s.alpaca_secret_key.get_secret_value() == ALPACA_SECRET
    assert s.alert_webhook_url.get_secret_value() == WEBHOOK_URL


def test_secrets_from_dotenv_are_masked_too(clean_env: Path) -> None:
    (clean_env / ".env").write_text(f"TAPEFLOW_ALPACA_SECRET_KEY={ALPACA_SECRET}\n", encoding="utf-8")
    s = Settings()
    assert s.alpaca_secret_key is not None
    assert s.alpaca_secret_key.get_secret_value() == ALPACA_SECRET
    assert_no_secret(repr(s) + str(s) + s.model_dump_json())


def test_validation_error_does_not_echo_secrets(secret_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAPEFLOW_LOCK_TIMEOUT_S", "-1")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert [e["loc"] for e in info.value.errors()] == [("lock_timeout_s",)]
    assert_no_secret(str(info.value))
    assert_no_secret(repr(info.value))
    assert_no_secret(info.value.json())


def test_settings_are_frozen(clean_env: Path) -> None:
    s = Settings()
    with pytest.raises(ValidationError, match="frozen"):
        s.mode = Mode.LIVE  # type: ignore[misc]
    assert s.mode is Mode.PAPER


def test_backtest_is_not_a_process_wide_mode(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TAPEFLOW_MODE", "backtest")
    with pytest.raises(ValidationError, match="mode must be paper or live"):
        Settings()


def test_env_example_names_every_setting_and_loads_as_the_defaults(clean_env: Path) -> None:
    """.env.example lists each setting once; with every non-key line uncommented it is a valid
    .env that changes nothing, so the file cannot drift from tapeflow/config.py."""
    example = (Path(__file__).resolve().parents[1] / ".env.example").read_text()
    named = re.findall(r"^# TAPEFLOW_([A-Z0-9_]+)=(.*)$", example, re.M)
    assert sorted(n.lower() for n, _ in named) == sorted(Settings.model_fields)
    (clean_env / ".env").write_text("".join(f"TAPEFLOW_{n}={v}\n" for n, v in named if v and n != "DATA_DIR"))
    assert load_settings() == Settings(_env_file=None)
