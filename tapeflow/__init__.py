"""tapeflow: a trading-bot pipeline for US equities on Prefect and DuckDB."""

__version__ = "0.1.0"
