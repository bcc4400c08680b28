"""Clocks for a trading session: the wall clock, or a simulated one that a replay advances."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from tapeflow.model import check_aware


class WallClock:
    """Real time; `sleep` really waits."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class SimulatedClock:
    """Time that moves only when the session sleeps: a stored day replays in seconds."""

    def __init__(self, start: datetime) -> None:
        self._now = check_aware("start", start)

    def now(self) -> datetime:
        return self._now

    def sleep(self, seconds: float) -> None:
        self._now += timedelta(seconds=max(0.0, seconds))

    def __call__(self) -> datetime:  # a broker's `now` callable
        return self._now
