"""The venue the settings name, for each interface: market data, watchlist, news, corporate
actions and the broker.

Vendor modules load on demand (the imports below sit in the branches on purpose): a replay
run or the simulator need not import alpaca-py or ib_async, which take seconds to load.
"""

from __future__ import annotations

from collections.abc import Callable

from tapeflow.backtest.costs import cost_preset
from tapeflow.brokers.base import Broker
from tapeflow.brokers.live_gate import BROKERS, check_live
from tapeflow.config import Settings
from tapeflow.model import Mode
from tapeflow.news import NewsSource, require_news_source
from tapeflow.news.replay import ReplayNews
from tapeflow.sources import MarketData, WatchlistSource, require_source, require_watchlist_source
from tapeflow.sources.base import ActionSource
from tapeflow.sources.replay import ReplaySource
from tapeflow.sources.replay_actions import ReplayActions
from tapeflow.sources.scanner import ScannerSource
from tapeflow.venues.benzinga import BenzingaNews
from tapeflow.venues.bullalert import BullAlertSource
from tapeflow.venues.finnhub import FinnhubSource
from tapeflow.venues.marketaux import MarketauxNews
from tapeflow.venues.polygon.actions import PolygonActions
from tapeflow.venues.polygon.bars import PolygonSource
from tapeflow.venues.polygon.news import PolygonNews
from tapeflow.venues.simulator import SimBroker
from tapeflow.venues.tiingo import TiingoNews
from warehouse import open_warehouse
from warehouse.connection import Warehouse


def market_data(name: str, settings: Settings) -> MarketData:
    """The market-data source called `name`, configured from settings."""
    name = require_source(name)
    if name == "replay":
        return ReplaySource(settings.data_dir)
    if name == "alpaca":
        from tapeflow.venues.alpaca.bars import AlpacaSource  # deferred: alpaca-py

        return AlpacaSource(settings)
    if name == "polygon":
        return PolygonSource(settings)
    if name == "finnhub":
        return FinnhubSource(settings)
    from tapeflow.venues.ibkr.bars import IbkrSource  # deferred: ib_async

    return IbkrSource(settings)


def watchlist_source(name: str, settings: Settings, warehouse: Warehouse | None = None,
                     universe: str | None = None) -> WatchlistSource:
    """The watchlist source called `name`: the scanner over `warehouse`'s daily bars (default:
    the settings' warehouse), among `universe`'s members of the day when named, or BullAlert
    configured from settings, over REST or its MCP server (its lists are its own: no universe applies)."""
    name = require_watchlist_source(name)
    if name == "scanner":
        return ScannerSource.from_warehouse(warehouse or open_warehouse(settings), universe=universe)
    if universe is not None:
        raise ValueError(f"a universe scopes the scanner's lists only; {name} sends its own (leave universe unset)")
    if name == "bullalert-mcp":
        from tapeflow.venues.bullalert_mcp import BullAlertMcpSource  # deferred: the MCP SDK (about 1 s)

        return BullAlertMcpSource(settings)
    return BullAlertSource(settings)


def news_source(name: str, settings: Settings) -> NewsSource:
    """The news source called `name`, configured from settings."""
    name = require_news_source(name)
    if name == "replay":
        return ReplayNews(settings.data_dir / "news")
    if name == "alpaca":
        from tapeflow.venues.alpaca.news import AlpacaNews  # deferred: alpaca-py

        return AlpacaNews(settings)
    if name == "polygon":
        return PolygonNews(settings)
    if name == "benzinga":
        return BenzingaNews(settings)
    if name == "marketaux":
        return MarketauxNews(settings)
    return TiingoNews(settings)


def _alpaca_actions(settings: Settings) -> ActionSource:
    from tapeflow.venues.alpaca.actions import AlpacaActions  # deferred: alpaca-py

    return AlpacaActions(settings)


ACTION_SOURCES: dict[str, Callable[[Settings], ActionSource]] = {
    "replay": lambda settings: ReplayActions(settings.data_dir),
    "alpaca": _alpaca_actions,
    "polygon": PolygonActions,
}
"""Corporate-action sources by name. Interactive Brokers is not one: the TWS API has no
corporate-actions history endpoint."""


def action_source(name: str, settings: Settings) -> ActionSource:
    """The corporate-action source called `name`, configured from settings."""
    make = ACTION_SOURCES.get(name)
    if make is None:
        raise ValueError(f"unknown corporate-action source {name!r}; known: {', '.join(ACTION_SOURCES)}")
    return make(settings)


def open_broker(settings: Settings, warehouse: Warehouse) -> Broker:
    """The broker `settings.broker` names, connected; live only through the live gate."""
    check_live(settings)
    if settings.broker == "sim":
        if settings.mode is Mode.LIVE:
            raise ValueError("the simulated broker only trades paper: set TAPEFLOW_MODE=paper")
        return SimBroker(warehouse, cash=settings.sim_cash, costs=cost_preset(settings.sim_costs))
    if settings.broker == "alpaca":
        from tapeflow.venues.alpaca.broker import AlpacaBroker  # deferred: alpaca-py

        return AlpacaBroker.from_settings(settings)
    if settings.broker == "ibkr":
        from tapeflow.venues.ibkr.broker import IbBroker  # deferred: ib_async

        return IbBroker.from_settings(settings)
    raise ValueError(f"unknown broker {settings.broker!r}; known: {', '.join(BROKERS)}")
