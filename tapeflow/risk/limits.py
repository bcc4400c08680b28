"""Limits that stop new risk: the daily-loss circuit breaker.

Once equity has fallen `limit_pct` below where the session started, no new entries are taken
until the next session; exits still go through. Backtest and live session share it.
"""

from __future__ import annotations


class DailyLossBreaker:
    """Tracks each session's starting equity; `tripped` once the loss limit is reached."""

    def __init__(self, limit_pct: float | None) -> None:
        if limit_pct is not None and not 0 < limit_pct < 1:
            raise ValueError("the daily loss limit must be within (0, 1), e.g. 0.02")
        self.limit_pct = limit_pct
        self._session: int | None = None
        self._start = 0.0

    def observe(self, session: int, equity: float) -> None:
        """The first equity seen in a session is its starting point."""
        if session != self._session:
            self._session, self._start = session, equity

    def tripped(self, session: int, equity: float) -> bool:
        if self.limit_pct is None or session != self._session or self._start <= 0:
            return False
        return equity / self._start - 1 <= -self.limit_pct

    def describe(self, session: int, equity: float) -> str:
        return f"equity {equity:,.2f} is {100 * (equity / self._start - 1):.2f}% from the session's {self._start:,.2f}"
