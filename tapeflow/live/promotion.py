"""The staged release: a strategy with one parameter set is promoted to paper, then to live.

A promotion is a row in `promotions` keyed by (strategy, params_hash, stage). Paper trading
needs a paper promotion (`tapeflow promote STRATEGY --to paper` creates it); live needs a
paper promotion first, then at least `min_paper_sessions` reconciled paper sessions of the
same parameters, or an override whose reason is recorded. A minimum set below the default
(30) counts only with such a reason: lowering a setting is no record of why. A session calls
`require_promotion` at start; live mode also needs TAPEFLOW_MODE=live and
TAPEFLOW_LIVE_CONFIRMED (principle 8: live is opt-in three times).

Parameters are resolved through the strategy's own `Param` rules (defaults filled in, types
coerced), so `-p fast=10` and no `-p` at all name the same parameter set when 10 is the
default, and the hash is the one `identity.params_hash` gives the session.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from tapeflow.brokers.live_gate import LiveNotConfirmed, check_live
from tapeflow.config import DEFAULT_MIN_PAPER_SESSIONS, Settings
from tapeflow.live.identity import params_hash
from tapeflow.model import Mode
from tapeflow.strategy.registry import get_strategy
from warehouse.connection import Warehouse

STAGES = (Mode.PAPER, Mode.LIVE)


class PromotionError(ValueError):
    """Base of the staged release's refusals; the message says what to do."""


class InvalidPromotion(PromotionError):
    """An unknown strategy, a bad parameter or an unknown stage."""


class PromotionRefused(PromotionError):
    """The rules of the staged release do not allow this promotion yet."""


class NotPromoted(PromotionError):
    """The strategy with these parameters may not trade in this mode."""


@dataclass(frozen=True)
class Promotion:
    """One stage a strategy and parameter set has reached."""

    strategy: str
    params: dict[str, int | float]
    params_hash: str
    stage: Mode
    promoted_at: datetime
    paper_sessions: int  # reconciled paper sessions when it was promoted
    override_reason: str | None = None


def resolve_params(strategy: str, params: Mapping[str, object] | None) -> dict[str, int | float]:
    """The strategy's full parameter set (defaults filled, values coerced and range-checked)."""
    try:
        return dict(get_strategy(strategy)(**dict(params or {})).p)
    except ValueError as exc:
        raise InvalidPromotion(str(exc)) from None


def _stage(to: Mode | str) -> Mode:
    try:
        stage = Mode(to)
    except ValueError:
        stage = None
    if stage not in STAGES:
        raise InvalidPromotion(f"a strategy is promoted to paper or live, not {to!r}")
    return stage


def reconciled_paper_sessions(con, strategy: str, hashed: str) -> int:
    """Distinct trading days this strategy and parameter set finished on paper with a clean reconciliation."""
    (n,) = con.execute(
        "SELECT count(DISTINCT session_date) FROM trading_sessions WHERE strategy = ? AND params_hash = ? "
        "AND mode = 'paper' AND status = 'finished' AND reconciled", [strategy, hashed]).fetchone()
    return int(n)


def _stored(con, strategy: str, hashed: str, stage: Mode) -> Promotion | None:
    row = con.execute(
        "SELECT params, promoted_at, paper_sessions, override_reason FROM promotions "
        "WHERE strategy = ? AND params_hash = ? AND stage = ?", [strategy, hashed, stage.value]).fetchone()
    if row is None:
        return None
    return Promotion(strategy, json.loads(row[0]), hashed, stage, row[1], row[2], row[3])


def promote(warehouse: Warehouse, strategy: str, params: Mapping[str, object] | None, to: Mode | str, *,
            override_reason: str | None = None, min_paper_sessions: int = DEFAULT_MIN_PAPER_SESSIONS,
            now: datetime | None = None) -> Promotion:
    """Record that `strategy` with `params` may trade at stage `to`; promoting twice keeps the first record."""
    stage = _stage(to)
    resolved = resolve_params(strategy, params)
    hashed = params_hash(resolved)
    reason = (override_reason or "").strip() or None
    if override_reason is not None and reason is None:
        raise InvalidPromotion("an override needs a reason: say why live comes before the minimum")
    with warehouse.write() as con:
        existing = _stored(con, strategy, hashed, stage)
        if existing is not None:
            return existing
        sessions = reconciled_paper_sessions(con, strategy, hashed)
        if stage is Mode.LIVE:
            if _stored(con, strategy, hashed, Mode.PAPER) is None:
                raise PromotionRefused(f"{strategy} {resolved} was never promoted to paper: "
                                       f"run `tapeflow promote {strategy} --to paper` and trade it on paper first")
            if sessions < min_paper_sessions and reason is None:
                raise PromotionRefused(
                    f"{strategy} {resolved} has {sessions} reconciled paper session(s), live needs "
                    f"{min_paper_sessions}: keep paper trading, or pass --override-reason to record why not")
            if sessions < DEFAULT_MIN_PAPER_SESSIONS and reason is None:
                raise PromotionRefused(
                    f"TAPEFLOW_MIN_PAPER_SESSIONS={min_paper_sessions} is below the default "
                    f"{DEFAULT_MIN_PAPER_SESSIONS} and {strategy} has {sessions} reconciled paper session(s): "
                    f"pass --override-reason to record why live comes early, or unset it and keep paper trading")
        else:
            reason = None  # paper needs no minimum, so there is nothing to override
        # The reason is kept whenever it let the promotion through: under the setting, or under the
        # default a lowered setting would otherwise have waived.
        waived = sessions < max(min_paper_sessions, DEFAULT_MIN_PAPER_SESSIONS)
        promotion = Promotion(strategy, resolved, hashed, stage, now or datetime.now(UTC), sessions,
                              reason if stage is Mode.LIVE and waived else None)
        con.execute("INSERT INTO promotions VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [strategy, hashed, json.dumps(resolved, sort_keys=True), stage.value, promotion.promoted_at,
                     sessions, promotion.override_reason])
    return promotion


def require_promotion(warehouse: Warehouse, strategy: str, params: Mapping[str, object] | None, mode: Mode | str,
                      settings: Settings) -> Promotion:
    """The promotion that lets `strategy` with `params` trade in `mode`, or NotPromoted /
    LiveNotConfirmed saying what is missing."""
    stage = _stage(mode)
    if stage is Mode.LIVE:
        if settings.mode is not Mode.LIVE:
            raise LiveNotConfirmed(f"a live session of {strategy} needs TAPEFLOW_MODE=live "
                                   f"(it is {settings.mode.value})")
        check_live(settings)
    resolved = resolve_params(strategy, params)
    with warehouse.write() as con:
        found = _stored(con, strategy, params_hash(resolved), stage)
    if found is None:
        raise NotPromoted(f"{strategy} {resolved} is not promoted to {stage.value}: "
                          f"run `tapeflow promote {strategy} --to {stage.value}` first")
    return found


def list_promotions(warehouse: Warehouse) -> pl.DataFrame:
    """Every promotion with the reconciled paper sessions of its parameter set, then and now."""
    with warehouse.write() as con:  # applies the migrations, so an older warehouse answers too
        frame = con.sql(
            """SELECT p.strategy, p.stage, p.params_hash, CAST(p.params AS VARCHAR) AS params, p.promoted_at,
                      p.paper_sessions AS sessions_at_promotion,
                      (SELECT count(DISTINCT s.session_date) FROM trading_sessions s
                        WHERE s.strategy = p.strategy AND s.params_hash = p.params_hash AND s.mode = 'paper'
                          AND s.status = 'finished' AND s.reconciled) AS reconciled_paper_sessions,
                      p.override_reason
               FROM promotions p ORDER BY p.strategy, p.params_hash, p.stage DESC""").pl()
    return frame


def promoted_params(warehouse: Warehouse, strategy: str, stage: Mode | str) -> dict[str, int | float] | None:
    """The parameters of the newest promotion of `strategy` to `stage`, or None."""
    with warehouse.write() as con:
        row = con.execute("SELECT params FROM promotions WHERE strategy = ? AND stage = ? ORDER BY promoted_at DESC "
                          "LIMIT 1", [strategy, _stage(stage).value]).fetchone()
    return json.loads(row[0]) if row else None
