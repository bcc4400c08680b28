"""Names that tie a session's rows together: its parameter hash, its session id, and the
client order id of each decision (the same decision always gets the same one)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date, datetime

from tapeflow.brokers.ids import client_order_id
from tapeflow.model import Action


def params_hash(params: Mapping[str, object]) -> str:
    """A short stable hash of a parameter set (key order does not matter)."""
    return hashlib.sha256(json.dumps(dict(params), sort_keys=True, default=str).encode()).hexdigest()[:12]


def session_id(strategy: str, params: Mapping[str, object], broker: str, mode: str, day: date) -> str:
    return f"{strategy}:{params_hash(params)}:{broker}:{mode}:{day.isoformat()}"


def decision_order_id(strategy: str, at: datetime, symbol: str, action: str, *, params: str = "",
                      mode: str = "paper") -> str:
    """The client order id of the order a decision at `at` sends (entries and exits): the
    same decision of the same parameter set (`params`: its hash) in the same mode always
    gets the same one, and no other does."""
    leg = "entry" if action == Action.ENTER else "exit"
    return client_order_id(strategy, f"{mode}:{params}:{at.isoformat()} {action}", symbol, leg)
