"""The configured broker opened to be looked at, not traded: the monitor connects beside a
running session without taking its place (its own IB client id, no Alpaca order stream)."""

from __future__ import annotations

from tapeflow.brokers.base import Broker
from tapeflow.brokers.live_gate import check_live
from tapeflow.config import Settings
from tapeflow.venues.configured import open_broker
from warehouse.connection import Warehouse


def open_watch_broker(settings: Settings, warehouse: Warehouse) -> Broker:
    """`settings.broker`, connected for reads; raises what `open_broker` raises."""
    if settings.broker == "alpaca":
        from tapeflow.venues.alpaca.broker import AlpacaBroker  # deferred: alpaca-py

        check_live(settings)
        # A second trade_updates stream on the account is not needed for reads, and would
        # compete with the session's.
        return AlpacaBroker.from_settings(settings, stream=False)
    if settings.broker == "ibkr":
        # IB drops a connection whose client id is already in use: never borrow the session's.
        settings = settings.model_copy(update={"ibkr_trading_client_id": settings.monitor_ibkr_client_id})
    return open_broker(settings, warehouse)
