"""Reconciliation: bring the ledger in line with the broker, which is the source of truth.

Orders and fills the broker has and the ledger lacks are adopted (a fill made while the
process was down is recorded, marked `adopted`); orders the ledger recorded but never sent
are closed. A position that still differs after adopting every fill cannot be explained: it
is reported, recorded, and blocks new entries until a clean run. Cash that moved more than
the fills explain is reported beside it (fees, dividends and transfers move cash too).

The window is the caller's: a session's starts before its own day (a replay's, before the
replayed day), never at the machine's date.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from tapeflow.brokers.base import Broker
from tapeflow.brokers.ledger import Ledger
from tapeflow.model import Fill

CASH_TOLERANCE = 0.01  # dollars: rounding of prices and commissions between broker and ledger


@dataclass(frozen=True)
class Difference:
    kind: str  # order | position | cash
    symbol: str | None
    detail: str
    explained: bool  # adopted or closed by this reconciliation: no block


@dataclass(frozen=True)
class Reconciliation:
    adopted_fills: list[Fill]
    differences: list[Difference]

    @property
    def clean(self) -> bool:
        return all(d.explained for d in self.differences)

    def describe(self) -> str:
        lines = [f"adopted {len(self.adopted_fills)} fill(s); {'clean' if self.clean else 'NOT CLEAN'}"]
        lines += [f"- {d.kind} {d.symbol or ''}: {d.detail}{'' if d.explained else ' (unexplained)'}"
                  for d in self.differences]
        return "\n".join(lines)


def reconcile(ledger: Ledger, broker: Broker, since: datetime) -> Reconciliation:
    """Compare orders and fills since `since`, positions and cash; adopt, record and report."""
    differences: list[Difference] = []
    open_in_ledger = set(ledger.open_orders())
    for state in broker.orders(since):
        known = ledger.order_status(state.client_order_id)
        if known is None:
            differences.append(Difference("order", state.symbol, f"order {state.client_order_id} placed outside "
                                          f"tapeflow ({state.status}): adopted", explained=True))
        ledger.record_order(state)
        open_in_ledger.discard(state.client_order_id)
    for cid in open_in_ledger:  # open in the ledger, not among the broker's recent orders
        sent = broker.order(cid)
        if sent is None:
            ledger.mark_unsent(cid, "never reached the broker (found by reconciliation)")
            differences.append(Difference("order", None, f"order {cid} never reached the broker: closed", explained=True))
        else:
            ledger.record_order(sent)

    adopted = []
    known_fills = ledger.fill_ids()
    for fill in broker.fills(since):
        if fill.fill_id not in known_fills and ledger.record_fill(fill, adopted=True):
            adopted.append(fill)
    if adopted:
        differences.append(Difference("order", None, f"{len(adopted)} fill(s) made while tapeflow was not "
                                      "listening: adopted", explained=True))

    held = {p.symbol: p.qty for p in broker.positions() if abs(p.qty) > 1e-9}
    recorded = ledger.positions()
    for symbol in sorted(set(held) | set(recorded)):
        if abs(held.get(symbol, 0.0) - recorded.get(symbol, 0.0)) > 1e-9:
            differences.append(Difference("position", symbol, f"broker holds {held.get(symbol, 0.0):g}, "
                                          f"ledger says {recorded.get(symbol, 0.0):g}", explained=False))

    # Cash moves only by fills: the cash the last reading found, plus the fills executed after it
    # (by the broker's clock, so a fill adopted late that the reading already held counts once).
    account = broker.account()
    previous = ledger.last_cash_reading()
    if previous is not None:
        expected = previous[1] + ledger.cash_flow_since(previous[0])
        if abs(account.cash - expected) > CASH_TOLERANCE:
            # Reported, not blocking: cash also moves for reasons no fill records (regulatory
            # fees, dividends, interest, transfers); positions are what must agree.
            differences.append(Difference("cash", None, f"broker cash {account.cash:,.2f}, fills since the last "
                                          f"reconciliation explain {expected:,.2f}", explained=True))
    ledger.snapshot(account, broker.positions())
    report = Reconciliation(adopted, differences)
    ledger.record_reconciliation(report.clean, [asdict(d) for d in differences], len(adopted), account.cash)
    return report
