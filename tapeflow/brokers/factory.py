"""The configured broker: sim (the default), Alpaca or Interactive Brokers, paper unless
live is asked for twice (mode=live and live_confirmed)."""

from __future__ import annotations

from tapeflow.brokers.base import Broker
from tapeflow.config import Settings
from tapeflow.model import Mode
from warehouse.connection import Warehouse

BROKERS = ("sim", "alpaca", "ibkr")


class LiveNotConfirmed(RuntimeError):
    """Live trading was asked for without its second switch."""


def check_live(settings: Settings) -> None:
    """Refuse live mode unless `live_confirmed` is also set."""
    if settings.mode is Mode.LIVE and not settings.live_confirmed:
        raise LiveNotConfirmed("mode is live but TAPEFLOW_LIVE_CONFIRMED is not set: refusing to trade real money")


def open_broker(settings: Settings, warehouse: Warehouse) -> Broker:
    """The broker `settings.broker` names, connected."""
    check_live(settings)
    if settings.broker == "sim":
        if settings.mode is Mode.LIVE:
            raise ValueError("the simulated broker only trades paper: set TAPEFLOW_MODE=paper")
        from tapeflow.brokers.sim import SimBroker
        from tapeflow.sim.costs import cost_preset

        return SimBroker(warehouse, cash=settings.sim_cash, costs=cost_preset(settings.sim_costs))
    if settings.broker == "alpaca":
        from tapeflow.brokers.alpaca import AlpacaBroker

        return AlpacaBroker.from_settings(settings)
    if settings.broker == "ibkr":
        from tapeflow.brokers.ibkr import IbBroker

        return IbBroker.from_settings(settings)
    raise ValueError(f"unknown broker {settings.broker!r}; known: {', '.join(BROKERS)}")
