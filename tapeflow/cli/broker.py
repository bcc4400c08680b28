"""`tapeflow broker ...`: look at and act on the configured broker account (paper by default).

Every order these commands send goes through `Execution`, so it is recorded in the warehouse
ledger and placed exactly once like the trading flow's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated

import polars as pl
import typer

from tapeflow.brokers.base import Broker, BrokerError
from tapeflow.brokers.execution import Execution
from tapeflow.brokers.ids import client_order_id
from tapeflow.brokers.ledger import Ledger
from tapeflow.brokers.live_gate import LiveNotConfirmed
from tapeflow.brokers.reconcile import reconcile
from tapeflow.cli.console import EXIT_REFUSED, err, out
from tapeflow.cli.output import print_frame, print_metrics
from tapeflow.config import load_settings
from tapeflow.model import Order, OrderType, Side, TimeInForce
from tapeflow.venues.configured import open_broker
from warehouse import open_warehouse

broker_app = typer.Typer(no_args_is_help=True, help=__doc__)


@contextmanager
def _execution() -> Iterator[Execution]:

    settings = load_settings()
    warehouse = open_warehouse(settings)
    try:
        broker = open_broker(settings, warehouse)
    except (LiveNotConfirmed, ValueError, BrokerError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_REFUSED) from None
    try:
        yield Execution(broker, Ledger(warehouse, broker.name, settings.mode))
    except BrokerError as exc:
        err.print(f"[red]{broker.name}: {exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        broker.close()


def _window_start(ex: Execution, days: int | None) -> datetime:
    """Where reconciliation looks from: DAYS back on the broker's clock (a simulated one keeps
    its own date), or a day before the last reading, or, the first time, the account's start."""
    if days is not None:
        return ex.broker.clock().timestamp - timedelta(days=days)
    last = ex.ledger.last_cash_reading()
    return last[0] - timedelta(days=1) if last is not None else datetime(1970, 1, 1, tzinfo=UTC)


def _orders_frame(broker: Broker, everything: bool, days: int) -> pl.DataFrame:
    orders = broker.orders(datetime.now(UTC) - timedelta(days=days)) if everything else broker.open_orders()
    return pl.DataFrame([{
        "client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side.value, "qty": o.qty,
        "type": o.order_type.value, "tif": o.time_in_force.value, "limit": o.limit_price, "stop": o.stop_price,
        "status": o.status.value, "filled": o.filled_qty, "avg_price": o.avg_fill_price, "submitted_at": o.submitted_at,
    } for o in orders], schema_overrides={"limit": pl.Float64, "stop": pl.Float64, "avg_price": pl.Float64})


@broker_app.command()
def status() -> None:
    """Account, clock, open orders, positions and the last reconciliation."""

    with _execution() as ex:
        account, clock = ex.broker.account(), ex.broker.clock()
        positions, working = ex.broker.positions(), ex.broker.open_orders()
        print_metrics({"broker": ex.broker.name, "mode": ex.broker.mode.value, "equity": account.equity,
                        "cash": account.cash, "buying_power": account.buying_power, "last_equity": account.last_equity,
                        "market_open": clock.is_open, "next_open": clock.next_open.isoformat(),
                        "open_orders": len(working), "positions": len(positions)}, "broker status")
        blocked = ex.ledger.entries_blocked()
        out.print(f"entries: {'BLOCKED - ' + blocked if blocked else 'allowed'}", soft_wrap=True)


@broker_app.command()
def orders(
    all_: Annotated[bool, typer.Option("--all", help="closed orders too")] = False,
    days: Annotated[int, typer.Option(help="with --all: how far back")] = 7,
) -> None:
    """Open orders (or, with --all, every order of the last DAYS days)."""

    with _execution() as ex:
        print_frame(_orders_frame(ex.broker, all_, days), title=f"{ex.broker.name} orders")


@broker_app.command()
def positions() -> None:
    """Positions as the broker reports them."""

    with _execution() as ex:
        held = ex.broker.positions()
        frame = pl.DataFrame([{"symbol": p.symbol, "qty": p.qty, "avg_price": p.avg_price} for p in held],
                             schema={"symbol": pl.String, "qty": pl.Float64, "avg_price": pl.Float64})
        print_frame(frame, title=f"{ex.broker.name} positions")


@broker_app.command("cancel-all")
def cancel_all() -> None:
    """Cancel every open order."""

    with _execution() as ex:
        working = ex.broker.open_orders()
        for o in working:
            ex.cancel(o.client_order_id)
        out.print(f"asked {ex.broker.name} to cancel {len(working)} order(s)")


@broker_app.command()
def flatten(
    yes: Annotated[bool, typer.Option("--yes", help="really send the market orders")] = False,
) -> None:
    """Cancel every open order and sell every position at market."""

    with _execution() as ex:
        held = [p for p in ex.broker.positions() if p.qty]
        if not yes:
            err.print(f"would cancel {len(ex.broker.open_orders())} order(s) and close {len(held)} position(s); "
                      "run again with --yes")
            raise typer.Exit(EXIT_REFUSED)
        for o in ex.broker.open_orders():
            ex.cancel(o.client_order_id)
        now = datetime.now(UTC)
        for p in held:
            side = Side.SELL if p.qty > 0 else Side.BUY
            ex.submit(Order(client_order_id=client_order_id("manual", f"flatten {now.isoformat()}", p.symbol, "flatten"),
                            mode=ex.broker.mode, broker=ex.broker.name, strategy="manual", symbol=p.symbol, side=side,
                            qty=abs(p.qty), order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY, created_at=now,
                            reason="tapeflow broker flatten"))
        out.print(f"sent {len(held)} closing order(s) to {ex.broker.name}")


@broker_app.command("reconcile")
def reconcile_command(
    days: Annotated[int | None, typer.Option(help="compare orders and fills of the last DAYS days (the broker's "
                                                   "clock); default: since a day before the last reconciliation, "
                                                   "or everything the first time")] = None,
) -> None:
    """Compare the broker with the warehouse ledger, adopt what the broker did, report differences."""

    if days is not None and days < 1:
        err.print(f"--days must be at least 1, got {days}: e.g. --days 3")
        raise typer.Exit(EXIT_REFUSED)
    with _execution() as ex:
        report = reconcile(ex.ledger, ex.broker, since=_window_start(ex, days))
        out.print(report.describe(), soft_wrap=True)
        if not report.clean:
            raise typer.Exit(1)
