"""The IB venue of the broker contract suite: the fake IB Gateway (with trading) on 127.0.0.1
and an IbBroker, through the real ib_async client, pointed at it."""

from __future__ import annotations

from pathlib import Path

from tapeflow.venues.ibkr.broker import IbBroker, IbPolicy
from tests.fakes.ib_gateway import FakeIBGateway
from tests.fakes.ib_trading import TradingDesk

CLIENT_ID = 18  # the trading client's default id
# Short waits: the fake answers in milliseconds, and a test that fails should fail fast.
TEST_POLICY = IbPolicy(connect_s=2.0, request_s=2.0, ack_s=1.0, reconnects=3, backoff_s=0.02)


class IbVenue:
    """A fake gateway holding orders, executions and positions across connections."""

    def __init__(self, tmp_path: Path, symbols: tuple[str, ...] = ("ACME", "AAPL", "MSFT"),
                 policy: IbPolicy = TEST_POLICY) -> None:
        self.policy = policy
        self.gateway = FakeIBGateway(symbols=list(symbols), trading=True, max_lifetime=600.0).start()
        assert self.gateway.trading is not None
        self.desk: TradingDesk = self.gateway.trading
        self.broker = self._new_broker()

    def _new_broker(self) -> IbBroker:
        broker = IbBroker("127.0.0.1", self.gateway.port, CLIENT_ID, policy=self.policy)
        broker.connect()
        return broker

    def set_price(self, symbol: str, price: float) -> None:
        self.desk.set_price(symbol, price)

    def fill(self, client_order_id: str, qty: float | None = None) -> None:
        self.desk.fill(client_order_id, qty)

    def fail_after_write_next(self) -> None:
        self.desk.fail_after_next_place()

    def drop_connection(self) -> None:
        self.desk.drop_clients()

    def submissions(self, client_order_id: str) -> int:
        return self.desk.submissions(client_order_id)

    def restart(self) -> IbBroker:
        self.broker.close()
        self.broker = self._new_broker()
        return self.broker

    def stop(self) -> None:
        try:
            self.broker.close()
        finally:
            self.gateway.stop()
