"""Settings from the environment and `.env`: one object, paper by default, secrets masked.

Every setting is `TAPEFLOW_<NAME>` (for example `TAPEFLOW_HOME=/srv/tapeflow`). Secrets are
`SecretStr`: repr, str, logs and JSON dumps show `**********`, never the value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import quote

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tapeflow.model import Mode, Role, Runtime

PROJECT_DIR = Path(__file__).resolve().parent.parent
"""The checkout tapeflow runs from (it is installed editable: flows, prefect.yaml, data/)."""
PROJECT_DATA = PROJECT_DIR / "data"
"""Sample data bundled with the project (see data/NOTICE)."""
DEFAULT_MIN_PAPER_SESSIONS = 30
"""Reconciled paper sessions live needs; a lower setting counts only with a recorded override reason."""


class Settings(BaseSettings):
    """tapeflow's configuration; build it with `Settings()` or `load_settings()`."""

    model_config = SettingsConfigDict(
        env_prefix="TAPEFLOW_", env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    mode: Mode = Field(Mode.PAPER, description="paper (default) or live; backtests set their own mode")
    home: Path = Field(Path("var"), description="where the warehouse file and local state live")
    data_dir: Path = Field(PROJECT_DATA, description="bundled sample data read by the replay source")
    lock_timeout_s: float = Field(30.0, gt=0, description="how long to retry when the warehouse is locked")
    sql_time_limit_s: float = Field(30.0, gt=0, description="`tapeflow sql` stops a query that runs longer "
                                    "(its reader keeps writers off the warehouse meanwhile)")
    alert_webhook_url: SecretStr | None = Field(None, description="alerts are POSTed here as JSON")
    mcp_token: SecretStr | None = Field(None, description="bearer token `tapeflow mcp serve --transport http` "
                                        "requires (a non-loopback host refuses to start without one)")

    strategy_path: str | None = Field(
        None, description="your own strategy files or folders, separated like PATH; found by name "
        "beside the built-ins (tapeflow strategies lists them)")
    role: Role = Field(Role.WAREHOUSE, description="warehouse: this machine owns the warehouse file (one-machine "
                       "installs); compute: backtests and research hand their results back to the warehouse pool")
    handoff_dir: Path | None = Field(None, description="where compute runs leave results (Parquet) for the warehouse "
                                     "pool to record; storage both see. Default: TAPEFLOW_HOME/handoff")
    archive_dir: Path | None = Field(None, description="the partitioned Parquet bar archive (timeframe=/month=) the "
                                     "warehouse reads through views. Default: TAPEFLOW_HOME/archive")
    dask_address: str | None = Field(
        None, description="Dask scheduler (tcp://host:8786) walk-forward and perturbation run their folds on; "
        "unset: local threads")

    # Market data: which vendor `ingest-bars` uses when no source is given, and each vendor's
    # endpoint and keys. Base URLs are settings so that a proxy or a test server can stand in.
    market_data_source: str = Field("replay", description="replay | alpaca | polygon | finnhub | ibkr")
    watchlist_source: str = Field("scanner", description="scanner | bullalert | bullalert-mcp")

    alpaca_api_key: SecretStr | None = None
    alpaca_secret_key: SecretStr | None = None
    alpaca_data_url: str = "https://data.alpaca.markets"
    alpaca_feed: str = Field("iex", description="sip (paid, all exchanges) or iex (free)")

    polygon_api_key: SecretStr | None = None
    polygon_url: str = "https://api.polygon.io"
    polygon_adjusted: bool = Field(True, description="split-adjusted aggregates")

    finnhub_api_key: SecretStr | None = None
    finnhub_url: str = "https://finnhub.io/api/v1"

    ibkr_host: str = "127.0.0.1"
    ibkr_port: int = Field(4002, description="IB Gateway: 4002 paper, 4001 live")
    ibkr_client_id: int = 17

    # Execution: which broker the trading flow and `tapeflow broker` use. Paper by default;
    # live needs mode=live *and* live_confirmed (and, for a strategy, a promotion record).
    broker: str = Field("sim", description="sim | alpaca | ibkr")
    live_confirmed: bool = Field(False, description="the explicit second switch that live trading needs")
    alpaca_paper_url: str = "https://paper-api.alpaca.markets"
    alpaca_live_url: str = "https://api.alpaca.markets"
    alpaca_stream_url: str | None = Field(None, description="trade_updates websocket; default: derived from the REST URL")
    ibkr_trading_client_id: int = Field(18, description="a client id of its own: the data client keeps 17")
    ibkr_account: str | None = Field(None, description="IB account id; default: the gateway's only account")
    sim_cash: float = Field(100_000.0, gt=0, description="the simulated broker's starting cash")
    sim_costs: str = Field("flat-commission", description="the simulated broker's cost preset: retail-default | liquid-etf | "
                                                        "large-cap | small-cap | flat-commission | none")

    # Staged release (tapeflow.live.promotion): reconciled paper sessions a strategy and its
    # parameters need before `tapeflow promote --to live` (an override must give a reason).
    min_paper_sessions: int = Field(DEFAULT_MIN_PAPER_SESSIONS, ge=0, description="reconciled paper sessions "
                                    "required before live; below the default only with --override-reason")

    # Monitoring and alerts: the shape of webhook bodies, how long a
    # repeated alert stays quiet, and when the monitor calls a heartbeat missing or data stale.
    alert_format: Literal["generic", "slack", "discord"] = Field(
        "generic", description="webhook body: generic JSON, Slack ({text, blocks}) or Discord ({content, embeds})")
    alert_dedup_window_s: float = Field(1800.0, ge=0, description="an alert with the same key is not re-sent within this")
    monitor_heartbeat_max_age_s: float = Field(180.0, gt=0, description="a running session's heartbeat older: alert")
    monitor_bars_max_age_s: float = Field(600.0, gt=0, description="newest minute bar older than this in session: alert")
    monitor_watchlist_max_age_s: float = Field(600.0, gt=0, description="newest live watchlist older than this: alert")
    monitor_fill_grace_s: float = Field(120.0, ge=0, description="broker fills this recent may still be on their way "
                                        "to the ledger: not position drift")
    monitor_ibkr_client_id: int = Field(19, description="the monitor's own IB client id (the session keeps its own)")

    # News (layer 2): which vendor `ingest-news` uses when none is given, each vendor's endpoint
    # and key (Alpaca and Polygon news use the keys above), and the sentiment model. How old a
    # headline may be to act on is a strategy parameter (news_catalyst's max_age_minutes).
    news_source: str = Field("replay", description="replay | alpaca | polygon | benzinga | marketaux | tiingo")
    alpaca_news_stream_url: str = Field("wss://stream.data.alpaca.markets/v1beta1/news", description="news websocket")
    benzinga_api_key: SecretStr | None = None
    benzinga_url: str = "https://api.benzinga.com"
    marketaux_api_key: SecretStr | None = None
    marketaux_url: str = "https://api.marketaux.com"
    tiingo_api_key: SecretStr | None = None
    tiingo_url: str = "https://api.tiingo.com"
    sentiment_model: str | None = Field(
        None, description="a Hugging Face id or local path of a sequence classifier; default: the current "
        "model in the warehouse (`tapeflow nlp models` marks it, `tapeflow nlp use` chooses it)")
    sentiment_runtime: Runtime = Field(
        Runtime.TORCH, description="what scores headlines in the flows and sessions: torch (the reference), onnx "
        "(ONNX Runtime on a float32 export: torch's labels, about 2x the speed) or onnx-int8 (faster still, ~2% of "
        "labels differ); the ONNX ones need a model in a local folder")

    bullalert_api_key: SecretStr | None = None
    bullalert_url: str = "https://api.bullalert.com"
    bullalert_mcp_url: str = Field("https://api.bullalert.com/mcp", description="BullAlert's MCP endpoint "
                                   "(streamable HTTP), for TAPEFLOW_WATCHLIST_SOURCE=bullalert-mcp")

    http_timeout_s: float = Field(10.0, gt=0, description="per request, for every REST vendor")
    http_attempts: int = Field(4, ge=1, description="tries per request before giving up")

    @field_validator("mode")
    @classmethod
    def _trading_mode(cls, mode: Mode) -> Mode:
        # Backtests carry their own mode; the process-wide setting is only paper or live.
        if mode is Mode.BACKTEST:
            raise ValueError("mode must be paper or live")
        return mode

    def secret_values(self) -> list[str]:
        """Every configured secret, for scrubbing text that leaves the process."""
        return [
            value.get_secret_value()
            for value in self.__dict__.values()
            if isinstance(value, SecretStr) and value.get_secret_value()
        ]

    @property
    def warehouse_path(self) -> Path:
        """The DuckDB file; an absolute path so worker processes agree on it."""
        return (self.home / "tapeflow.duckdb").resolve()

    @property
    def handoff_path(self) -> Path:
        """Where compute runs leave results for the warehouse pool (absolute, as workers must agree)."""
        return (self.handoff_dir or self.home / "handoff").resolve()

    @property
    def archive_path(self) -> Path:
        """The root of the partitioned Parquet bar archive (absolute, as workers must agree)."""
        return (self.archive_dir or self.home / "archive").resolve()


def secret_fields() -> tuple[str, ...]:
    """Names of the settings that hold secrets (vendor keys, the alert webhook), in declaration order."""
    return tuple(name for name, field in Settings.model_fields.items() if SecretStr in get_args(field.annotation))


REPORTS_URL_ENV = "TAPEFLOW_REPORTS_URL"
"""Set by `tapeflow serve` for its flow runs (not a user setting): the served reports folder's URL, ending in /."""


def report_url(run_id: str) -> str | None:
    """Where `tapeflow serve` serves `reports/<run_id>/report.html`; None when no stack serves reports."""
    base = os.environ.get(REPORTS_URL_ENV)
    if not base:
        return None
    return f"{base.rstrip('/')}/{quote(run_id, safe='')}/report.html"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, `.env`, then explicit overrides (validated like the rest)."""
    return Settings(**overrides)


def prefect_defaults(settings: Settings) -> dict[str, str]:
    """Prefect settings for processes tapeflow starts: the project's own Prefect home, and
    no telemetry (it would only fail on an offline machine)."""
    return {
        "PREFECT_HOME": str((settings.home / "prefect").resolve()),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # The local API's first start creates its database; on two busy cores that can take
        # longer than Prefect's 20 s default, and the command would die waiting for it.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    }
