"""The warehouse's record of one broker account in one mode: orders, fills, snapshots and
reconciliations. Each write is one short transaction, so a long trading session never pins
the DuckDB file, and every write is keyed so that replaying it changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tapeflow.brokers.base import BrokerOrder, OrderRejected, OrderUpdate
from tapeflow.model import Account, Fill, Mode, Order, OrderStatus, Position, Side
from warehouse.connection import Warehouse

FINAL = (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED, OrderStatus.REPLACED)


def _now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """Orders, fills and snapshots of `broker` in `mode`, as tapeflow has recorded them."""

    def __init__(self, warehouse: Warehouse, broker: str, mode: Mode) -> None:
        self.warehouse = warehouse
        self.broker = broker
        self.mode = Mode(mode)

    # -- writes -------------------------------------------------------------------------

    def record_intent(self, order: Order) -> None:
        """The order before it is sent (status pending); a second call for it changes nothing."""
        with self.warehouse.write() as con:
            con.execute(
                """INSERT INTO orders (client_order_id, mode, broker, strategy, symbol, side, qty, order_type,
                       time_in_force, limit_price, stop_price, take_profit_price, stop_loss_price, status, reason,
                       created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)
                   ON CONFLICT (client_order_id) DO NOTHING""",
                [order.client_order_id, self.mode.value, self.broker, order.strategy, order.symbol, order.side.value,
                 order.qty, order.order_type.value, order.time_in_force.value, order.limit_price, order.stop_price,
                 order.take_profit_price, order.stop_loss_price, order.reason, order.created_at, _now()],
            )

    def record_order(self, state: BrokerOrder, *, strategy: str = "external") -> None:
        """The broker's view of an order; one tapeflow did not place is recorded under `strategy`."""
        with self.warehouse.write() as con:
            con.execute(
                """INSERT INTO orders (client_order_id, mode, broker, strategy, symbol, side, qty, order_type,
                       time_in_force, limit_price, stop_price, status, filled_qty, avg_fill_price, broker_order_id,
                       reason, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (client_order_id) DO UPDATE SET status = excluded.status,
                       filled_qty = excluded.filled_qty, avg_fill_price = excluded.avg_fill_price,
                       broker_order_id = excluded.broker_order_id, qty = excluded.qty,
                       limit_price = excluded.limit_price, stop_price = excluded.stop_price,
                       reason = CASE WHEN excluded.reason = '' THEN orders.reason ELSE excluded.reason END,
                       updated_at = excluded.updated_at""",
                [state.client_order_id, self.mode.value, self.broker, strategy, state.symbol, state.side.value,
                 state.qty, state.order_type.value, state.time_in_force.value, state.limit_price, state.stop_price,
                 state.status.value, state.filled_qty, state.avg_fill_price, state.broker_order_id, state.reason,
                 state.submitted_at or _now(), _now()],
            )

    def record_rejection(self, order: Order, error: OrderRejected) -> None:
        """A refused order keeps its row, with the typed reason and the broker's words."""
        self.record_intent(order)
        with self.warehouse.write() as con:
            con.execute("UPDATE orders SET status = 'rejected', reason = ?, updated_at = ? WHERE client_order_id = ?",
                        [f"{error.reason}: {error}", _now(), order.client_order_id])

    def mark_unsent(self, client_order_id: str, reason: str) -> None:
        """A pending order the broker never received (the process died before sending it)."""
        with self.warehouse.write() as con:
            con.execute("UPDATE orders SET status = 'canceled', reason = ?, updated_at = ? "
                        "WHERE client_order_id = ? AND status = 'pending'", [reason, _now(), client_order_id])

    def record_fill(self, fill: Fill, *, adopted: bool = False) -> bool:
        """Store an execution once; True if it was new."""
        with self.warehouse.write() as con:
            [(known,)] = con.execute("SELECT count(*) FROM fills WHERE broker = ? AND fill_id = ?",
                                     [fill.broker, fill.fill_id]).fetchall()
            if known:
                return False
            con.execute(
                "INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [fill.broker, fill.fill_id, self.mode.value, fill.client_order_id, fill.symbol, fill.side.value,
                 fill.ts, fill.qty, fill.price, fill.commission, adopted, _now()],
            )
            return True

    def record_update(self, update: OrderUpdate) -> None:
        if update.fill is not None:
            self.record_fill(update.fill)
        self.record_order(update.order)

    def snapshot(self, account: Account, positions: list[Position]) -> None:
        with self.warehouse.write() as con:
            con.execute("INSERT INTO account_snapshots VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        [self.broker, self.mode.value, account.as_of, account.equity, account.cash,
                         account.buying_power, account.last_equity])
            for p in positions:
                con.execute("INSERT INTO position_snapshots VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                            [self.broker, self.mode.value, account.as_of, p.symbol, p.qty, p.avg_price])

    def record_reconciliation(self, clean: bool, differences: list[dict], adopted: int, cash: float) -> None:
        with self.warehouse.write() as con:
            con.execute("INSERT INTO reconciliations VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [self.broker, self.mode.value, _now(), clean, json.dumps(differences), adopted, cash])

    # -- reads --------------------------------------------------------------------------

    def _rows(self, sql: str, params: list) -> list[tuple]:
        with self.warehouse.write() as con:  # the writer's file: readers are refused while a session holds it
            return con.execute(sql, params).fetchall()

    def order_status(self, client_order_id: str) -> OrderStatus | None:
        rows = self._rows("SELECT status FROM orders WHERE client_order_id = ?", [client_order_id])
        return OrderStatus(rows[0][0]) if rows else None

    def order_reason(self, client_order_id: str) -> str:
        rows = self._rows("SELECT reason FROM orders WHERE client_order_id = ?", [client_order_id])
        return rows[0][0] if rows else ""

    def open_orders(self) -> list[str]:
        """Client order ids the ledger still believes are working (or were never acknowledged)."""
        final = ", ".join(f"'{s.value}'" for s in FINAL)
        rows = self._rows(f"SELECT client_order_id FROM orders WHERE broker = ? AND mode = ? AND status NOT IN ({final}) "
                          "ORDER BY created_at", [self.broker, self.mode.value])
        return [r[0] for r in rows]

    def order_created(self, client_order_id: str) -> datetime | None:
        rows = self._rows("SELECT created_at FROM orders WHERE client_order_id = ?", [client_order_id])
        return rows[0][0] if rows else None

    def fills(self, client_order_id: str | None = None) -> list[Fill]:
        sql = ("SELECT broker, fill_id, client_order_id, symbol, side, ts, qty, price, commission FROM fills "
               "WHERE broker = ? AND mode = ?")
        params: list = [self.broker, self.mode.value]
        if client_order_id is not None:
            sql += " AND client_order_id = ?"
            params.append(client_order_id)
        rows = self._rows(sql + " ORDER BY ts, fill_id", params)
        return [Fill(broker=r[0], fill_id=r[1], client_order_id=r[2], symbol=r[3], side=Side(r[4]), ts=r[5], qty=r[6],
                     price=r[7], commission=r[8]) for r in rows]

    def fill_ids(self) -> set[str]:
        return {r[0] for r in self._rows("SELECT fill_id FROM fills WHERE broker = ? AND mode = ?",
                                         [self.broker, self.mode.value])}

    def positions(self, strategy: str | None = None) -> dict[str, float]:
        """Net shares per symbol from the recorded fills (flat symbols left out), of one
        strategy's orders if `strategy` is given."""
        sql = ("SELECT f.symbol, sum(CASE WHEN f.side = 'buy' THEN f.qty ELSE -f.qty END) FROM fills f "
               "LEFT JOIN orders o USING (client_order_id) WHERE f.broker = ? AND f.mode = ?")
        params: list = [self.broker, self.mode.value]
        if strategy is not None:
            sql += " AND o.strategy = ?"
            params.append(strategy)
        rows = self._rows(sql + " GROUP BY f.symbol ORDER BY f.symbol", params)
        return {symbol: qty for symbol, qty in rows if abs(qty) > 1e-9}

    def last_filled_entry(self, strategy: str, symbol: str) -> str | None:
        """The client order id of the strategy's newest filled buy in `symbol`."""
        rows = self._rows("SELECT client_order_id FROM orders WHERE strategy = ? AND symbol = ? AND side = 'buy' "
                          "AND broker = ? AND mode = ? AND filled_qty > 0 ORDER BY updated_at DESC LIMIT 1",
                          [strategy, symbol, self.broker, self.mode.value])
        return rows[0][0] if rows else None

    def cash_flow_since(self, since: datetime) -> float:
        """What the fills executed after `since` (the broker's clock) did to cash: sales in,
        purchases and commissions out."""
        rows = self._rows(
            "SELECT coalesce(sum(CASE WHEN side = 'buy' THEN -qty * price ELSE qty * price END - commission), 0) "
            "FROM fills WHERE broker = ? AND mode = ? AND ts > ?", [self.broker, self.mode.value, since])
        return float(rows[0][0])

    def last_cash_reading(self) -> tuple[datetime, float] | None:
        """The newest account snapshot: when the broker reported it (its clock) and the cash."""
        rows = self._rows("SELECT ts, cash FROM account_snapshots WHERE broker = ? AND mode = ? ORDER BY ts DESC LIMIT 1",
                          [self.broker, self.mode.value])
        return (rows[0][0], rows[0][1]) if rows else None

    def entries_blocked(self) -> str | None:
        """Why new entries are refused (the last reconciliation found an unexplained difference), or None."""
        rows = self._rows("SELECT clean, differences FROM reconciliations WHERE broker = ? AND mode = ? "
                          "ORDER BY ts DESC LIMIT 1", [self.broker, self.mode.value])
        if not rows or rows[0][0]:
            return None
        found = json.loads(rows[0][1])
        return "; ".join(d["detail"] for d in found if not d.get("explained")) or "the last reconciliation was not clean"
