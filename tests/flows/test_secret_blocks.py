"""Vendor keys come from the environment, else from a Prefect Secret block named by one rule;
a flow run reads them through the real API, and the environment wins when both hold a key."""

from __future__ import annotations

import os

import pytest
from prefect import flow
from prefect.blocks.system import Secret

from flows.secrets import block_name, env_name, save_secret_blocks, vendor_settings
from tapeflow.config import Settings

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness", "tapeflow_home")]


@flow(name="reads-vendor-keys")
def reads_vendor_keys() -> dict[str, str | None]:
    """What a vendor flow sees: the keys its adapters would be built with."""
    settings = vendor_settings()
    return {name: (value.get_secret_value() if value else None)
            for name, value in (("polygon", settings.polygon_api_key), ("finnhub", settings.finnhub_api_key))}


def test_the_block_name_rule() -> None:
    assert block_name("alpaca_api_key") == "tapeflow-alpaca-api-key"
    assert env_name("alpaca_api_key") == "TAPEFLOW_ALPACA_API_KEY"


def test_a_flow_reads_a_key_from_its_block_and_the_environment_wins(monkeypatch, caplog) -> None:
    Secret(value="poly-from-block").save(block_name("polygon_api_key"), overwrite=True)
    Secret(value="finn-from-block").save(block_name("finnhub_api_key"), overwrite=True)
    monkeypatch.setenv("TAPEFLOW_FINNHUB_API_KEY", "finn-from-env")
    monkeypatch.delenv("TAPEFLOW_POLYGON_API_KEY", raising=False)

    try:
        seen = reads_vendor_keys()
        # Later settings in the same process (tasks, hooks) see the block's key too.
        later = Settings().polygon_api_key
    finally:
        os.environ.pop("TAPEFLOW_POLYGON_API_KEY", None)  # vendor_settings set it: the next test starts clean

    assert seen == {"polygon": "poly-from-block", "finnhub": "finn-from-env"}
    assert later is not None and later.get_secret_value() == "poly-from-block"
    assert not any("poly-from-block" in r.getMessage() for r in caplog.records)


def test_save_writes_only_the_keys_that_are_set(monkeypatch) -> None:
    monkeypatch.setenv("TAPEFLOW_TIINGO_API_KEY", "tiingo-123")
    names = save_secret_blocks(Settings())
    assert names == ["tapeflow-tiingo-api-key"]
    assert Secret.load("tapeflow-tiingo-api-key").get() == "tiingo-123"
    assert "TAPEFLOW_TIINGO_API_KEY" in os.environ  # the environment is left as it was
