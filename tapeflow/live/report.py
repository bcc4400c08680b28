"""What a trading session did in a day: the summary it records in `trading_sessions` and
that `tapeflow sessions` lists."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SessionReport:
    session_id: str
    status: str  # finished | no session | killed
    cycles: int = 0
    decisions: int = 0
    orders_sent: int = 0
    rejected: int = 0
    fills: int = 0
    realized_pnl: float = 0.0
    equity_start: float | None = None
    equity_end: float | None = None
    reconciled: bool = False
    alerts: list[str] = field(default_factory=list)
    recovery: list[str] = field(default_factory=list)  # what a restart found and did

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)
