"""The broker names, and the gate that keeps a process on paper unless live is asked for twice
(mode=live and live_confirmed)."""

from __future__ import annotations

from tapeflow.config import Settings
from tapeflow.model import Mode

BROKERS = ("sim", "alpaca", "ibkr")


class LiveNotConfirmed(RuntimeError):
    """Live trading was asked for without its second switch."""


def check_live(settings: Settings) -> None:
    """Refuse live mode unless `live_confirmed` is also set."""
    if settings.mode is Mode.LIVE and not settings.live_confirmed:
        raise LiveNotConfirmed("mode is live but TAPEFLOW_LIVE_CONFIRMED is not set: refusing to trade real money")
