"""Client order ids: the same decision always yields the same id, so a retry or a restart
finds the order it already sent instead of sending another."""

from __future__ import annotations

import hashlib
import re

LEGS = ("entry", "exit", "stop", "target", "flatten")


def client_order_id(strategy: str, decision: str, symbol: str, leg: str = "entry") -> str:
    """A deterministic id for one leg of one decision: readable prefix, hash of the rest.

    `decision` names the decision uniquely within the strategy (e.g. its time and action).
    At most 48 characters, as both Alpaca (128) and IB's orderRef accept."""
    if leg not in LEGS:
        raise ValueError(f"unknown leg {leg!r}; known: {', '.join(LEGS)}")
    if not strategy or not decision or not symbol:
        raise ValueError("strategy, decision and symbol are all needed for a client order id")
    digest = hashlib.sha256("\x1f".join((strategy, decision, symbol, leg)).encode()).hexdigest()[:20]
    return f"{_prefix(strategy)}-{symbol.replace('.', '_')[:8]}-{leg}-{digest}"


def is_entry_of(strategy: str, client_order_id: str) -> bool:
    """Whether an id looks like one of `strategy`'s entries (its prefix may be another strategy's
    too): for the kill switch when the ledger cannot be read, where cancelling more is safe."""
    return re.fullmatch(rf"{re.escape(_prefix(strategy))}-.+-entry-[0-9a-f]{{20}}", client_order_id) is not None


def _prefix(strategy: str) -> str:
    return re.sub(r"[^a-z0-9]", "", strategy.lower())[:10] or "tf"


TAKE_PROFIT, STOP_LOSS = "tp", "sl"


def leg_id(entry_id: str, leg: str) -> str:
    """A bracket leg's client order id: its entry's plus `.tp` or `.sl` (the broker places
    the legs, so they cannot take an id of their own from a decision)."""
    if leg not in (TAKE_PROFIT, STOP_LOSS):
        raise ValueError(f"a bracket leg is {TAKE_PROFIT!r} or {STOP_LOSS!r}, not {leg!r}")
    return f"{entry_id}.{leg}"
