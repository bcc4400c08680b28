"""Vendor keys from Prefect Secret blocks: each secret setting may live in a block named
`tapeflow-` + its name with dashes (`alpaca_api_key` -> `tapeflow-alpaca-api-key`); the
environment and `.env` win over the block. Values are never logged."""

from __future__ import annotations

import logging
import os

from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from tapeflow.config import Settings, load_settings, secret_fields

BLOCK_PREFIX = "tapeflow-"
SECRET_BLOCK_TYPE = "secret"

log = logging.getLogger(__name__)


def block_name(setting: str) -> str:
    """The Secret block that may hold `setting` (`alpaca_api_key` -> `tapeflow-alpaca-api-key`)."""
    return BLOCK_PREFIX + setting.replace("_", "-")


def env_name(setting: str) -> str:
    """The environment variable of `setting` (`alpaca_api_key` -> `TAPEFLOW_ALPACA_API_KEY`)."""
    return "TAPEFLOW_" + setting.upper()


def vendor_settings() -> Settings:
    """Settings with every secret the environment and `.env` lack taken from its Secret block.

    Found values go into this process's environment, so that every later `load_settings()` (in
    tasks, hooks, adapters) sees them; an unreachable API leaves the settings as they are."""
    settings = load_settings()
    missing = [name for name in secret_fields() if getattr(settings, name) is None]
    if not missing:
        return settings
    try:
        found = read_secret_blocks(missing)
    except Exception as exc:  # the run may not need a key at all: say why none came, never what
        log.warning("could not read Prefect Secret blocks: %s", type(exc).__name__)
        return settings
    for name, value in found.items():
        os.environ[env_name(name)] = value
    return load_settings() if found else settings


def read_secret_blocks(settings: list[str]) -> dict[str, str]:
    """The values of the Secret blocks named for `settings`, by setting, in one API call."""
    wanted = {block_name(name): name for name in settings}
    with get_client(sync_client=True) as client:
        try:
            documents = client.read_block_documents_by_type(SECRET_BLOCK_TYPE, include_secrets=True)
        except ObjectNotFound:  # no Secret block was ever saved on this server
            return {}
    found: dict[str, str] = {}
    for document in documents:
        value = (document.data or {}).get("value")
        if document.name in wanted and isinstance(value, str) and value:
            found[wanted[document.name]] = value
    return found


def save_secret_blocks(settings: Settings) -> list[str]:
    """Create or update the Secret block of every secret set in `settings`; returns the block names."""
    saved = []
    for name in secret_fields():
        value = getattr(settings, name)
        if value is not None and value.get_secret_value():
            Secret(value=value.get_secret_value()).save(block_name(name), overwrite=True)
            saved.append(block_name(name))
    return saved
