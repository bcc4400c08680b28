"""Settings from the environment and `.env`: one object, paper by default, secrets masked.

Every setting is `TAPEFLOW_<NAME>` (for example `TAPEFLOW_HOME=/srv/tapeflow`). Secrets are
`SecretStr`: repr, str, logs and JSON dumps show `**********`, never the value.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tapeflow.model import Mode

PROJECT_DATA = Path(__file__).resolve().parent.parent / "data"
"""Sample data bundled with the project (see data/NOTICE)."""


class Settings(BaseSettings):
    """tapeflow's configuration; build it with `Settings()` or `load_settings()`."""

    model_config = SettingsConfigDict(
        env_prefix="TAPEFLOW_", env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    mode: Mode = Field(Mode.PAPER, description="paper (default) or live; backtests set their own mode")
    home: Path = Field(Path("var"), description="where the warehouse file and local state live")
    data_dir: Path = Field(PROJECT_DATA, description="bundled sample data read by the replay source")
    lock_timeout_s: float = Field(30.0, gt=0, description="how long to retry when the warehouse is locked")
    alert_webhook_url: SecretStr | None = Field(None, description="alerts are POSTed here as JSON")

    alpaca_api_key: SecretStr | None = None
    alpaca_secret_key: SecretStr | None = None
    polygon_api_key: SecretStr | None = None
    finnhub_api_key: SecretStr | None = None
    bullalert_api_key: SecretStr | None = None

    @field_validator("mode")
    @classmethod
    def _trading_mode(cls, mode: Mode) -> Mode:
        # Backtests carry their own mode; the process-wide setting is only paper or live.
        if mode is Mode.BACKTEST:
            raise ValueError("mode must be paper or live")
        return mode

    @property
    def warehouse_path(self) -> Path:
        """The DuckDB file; an absolute path so worker processes agree on it."""
        return (self.home / "tapeflow.duckdb").resolve()


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, `.env`, then explicit overrides."""
    return Settings(**overrides)
