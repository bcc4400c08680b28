"""Paper versus backtest: replay one paper session's decisions through the backtest engine and
attribute every dollar of difference to a cause.

The replay takes the decisions with a quantity (`session_decisions`, quantities as sent)
that the execution policy did not refuse (a rule is not a fill: its refusals are the same in
a backtest) of the session and of the same strategy's earlier sessions on that
account (so a position carried in from an earlier day is held in the replay too), and the
bars of the strategy's timeframe from the first of them to the session's day, and runs them
through `engine.simulate` with the costs the paper broker used, the quantities as they were
and no buying-power check, so only the fill model can differ; the session's own decisions
are compared.
Both sides are valued the same way: cash flows of their fills plus what is still held, marked
at the symbol's last close of the day. Per decision, with s = +1 for a buy and -1 for a sell,
the gap (paper - backtest) splits exactly into:

- slippage: s * common qty * (backtest price - paper price), when both filled on the same bar(s);
- timing: the same amount, when they filled on different bars (or over more of them);
- commission: backtest commission - paper commission, when both filled;
- missed_fill / extra_fill: only the backtest / only paper filled: the shares valued from
  their fill price to the mark, and their commission;
- partial_fill: both filled, different quantities: the extra shares valued likewise.

A negative gap is money paper lost against the backtest. Round trips (an entry and the exit
that follows it, per symbol) sum the gaps of their decisions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta

import polars as pl

from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import Costs
from tapeflow.backtest.engine import simulate
from tapeflow.backtest.liquidity import liquidity_of, with_liquidity
from tapeflow.calendar.exchange import ny_day_bounds
from tapeflow.model import Action, Outcome
from tapeflow.risk.policy import RULES_OFF
from tapeflow.schemas import to_us
from tapeflow.strategy.base import signal_frame
from tapeflow.strategy.registry import get_strategy
from warehouse.connection import Warehouse
from warehouse.reads import bars_between

POLICY_REFUSALS = (Outcome.DAILY_LOSS, Outcome.ENTRIES_STOPPED, Outcome.CLOSING, Outcome.TOO_OLD, Outcome.SIZED_TO_ZERO,
                   Outcome.NO_BUYING_POWER, Outcome.NO_PRICE)
"""Outcomes of decisions the session did not act on by rule: not replayed, not a gap."""
CAUSES = ("slippage", "timing", "commission", "missed_fill", "extra_fill", "partial_fill")
_EPS = 1e-9


class GapError(ValueError):
    """The session cannot be compared: unknown, not paper, or its data does not line up."""


@dataclass(frozen=True)
class PaperSession:
    session_id: str
    strategy: str
    params_hash: str
    broker: str
    mode: str
    session_date: date


@dataclass(frozen=True)
class GapReport:
    """One paper session against its replay: per decision, per round trip, per cause."""

    session: PaperSession
    costs: Costs
    decisions: pl.DataFrame  # one row per decision, a column per cause
    trades: pl.DataFrame  # one row per round trip
    paper_pnl: float
    backtest_pnl: float

    @property
    def gap(self) -> float:
        return self.paper_pnl - self.backtest_pnl

    @property
    def totals(self) -> dict[str, float]:
        return {cause: float(self.decisions[cause].sum()) if self.decisions.height else 0.0 for cause in CAUSES}

    def summary(self) -> dict[str, object]:
        return {"session_id": self.session.session_id, "decisions": self.decisions.height,
                "round_trips": self.trades.height, "paper_pnl": self.paper_pnl, "backtest_pnl": self.backtest_pnl,
                "gap": self.gap, **self.totals}


# -- loading -------------------------------------------------------------------------------


def load_session(con, session_id: str) -> PaperSession:
    rows = con.execute("SELECT session_id, strategy, params_hash, broker, mode, session_date FROM trading_sessions "
                       "WHERE session_id = ?", [session_id]).fetchall()
    if not rows:
        raise GapError(f"no trading session {session_id!r}")
    session = PaperSession(*rows[0])
    if session.mode != "paper":
        raise GapError(f"session {session_id} traded {session.mode}: only paper sessions are compared")
    return session


def paper_sessions(warehouse: Warehouse, day: date, strategy: str | None = None) -> list[str]:
    """The paper sessions of New York day `day` (of one strategy, or all)."""
    sql = "SELECT session_id FROM trading_sessions WHERE mode = 'paper' AND session_date = ?"
    params: list = [day]
    if strategy is not None:
        sql += " AND strategy = ?"
        params.append(strategy)
    with warehouse.write() as con:
        return [r[0] for r in con.execute(sql + " ORDER BY session_id", params).fetchall()]


_DECISIONS = """
SELECT d.client_order_id, d.decided_at AS at, d.symbol, d.action, d.reason, coalesce(d.qty, o.qty) AS qty,
       d.order_type, d.time_in_force, d.limit_price, d.stop_price, d.outcome, d.session_id = $session AS own
FROM session_decisions d LEFT JOIN orders o ON o.client_order_id = d.client_order_id
JOIN trading_sessions s ON s.session_id = d.session_id
WHERE s.strategy = $strategy AND s.params_hash = $params AND s.broker = $broker AND s.mode = $mode
  AND s.session_date <= $day
ORDER BY d.decided_at, d.symbol, d.client_order_id"""

_PAPER_FILLS = """
SELECT f.client_order_id, f.ts, f.qty, f.price, f.commission
FROM fills f JOIN orders o ON o.client_order_id = f.client_order_id AND o.mode = f.mode
WHERE f.mode = 'paper' AND list_contains($ids, f.client_order_id) ORDER BY f.ts, f.fill_id"""


def _window(day: date, last_fill: datetime | None) -> tuple[datetime, datetime]:
    """The New York day, stretched to a later paper fill so the replay sees that bar too."""
    start, end = ny_day_bounds(day)
    if last_fill is not None and last_fill >= end:
        end = last_fill + timedelta(microseconds=1)
    return start, end


# -- comparing -----------------------------------------------------------------------------


def measure_gap(warehouse: Warehouse, session_id: str, costs: Costs, *, cash: float = 100_000.0) -> GapReport:
    """Replay paper session `session_id` with `costs` and compare it, decision by decision."""
    with warehouse.write() as con:
        session = load_session(con, session_id)
        every = con.sql(_DECISIONS, params={"session": session_id, "strategy": session.strategy,
                                            "params": session.params_hash, "broker": session.broker,
                                            "mode": session.mode, "day": session.session_date}).pl()
        every = every.filter(~pl.any_horizontal(pl.col("outcome").str.starts_with(r.value) for r in POLICY_REFUSALS)
                             & pl.col("qty").is_not_null())  # a refused sized entry has none: nothing was sent
        decisions = every.filter("own").drop("own")
        ids = decisions["client_order_id"].to_list()
        paper = con.sql(_PAPER_FILLS, params={"ids": ids}).pl()
        timeframe = get_strategy(session.strategy).timeframe
        last_fill = paper["ts"].max() if paper.height else None
        start, end = _window(session.session_date, last_fill)
        if every.height:
            start = min(start, every["at"].min())
        bars = bars_between(con, timeframe, start, end, sorted(set(every["symbol"].to_list())) or None)
        bars = with_liquidity(bars, liquidity_of(con, bars))  # each name's liquidity as the paper broker read it
    if decisions.height and bars.is_empty():
        raise GapError(f"no {timeframe} bars for {session.session_date} in the warehouse: the replay needs them")

    replayed = simulate(bars, signal_frame(every.drop("client_order_id", "outcome", "own")),
                        BacktestConfig(cash=cash, costs=costs, policy=RULES_OFF, buying_power_multiple=None))
    mine = every.with_row_index("_i").filter("own")["_i"].to_list()
    result = replace(replayed, decisions=replayed.decisions[mine])
    engine_ids = _engine_ids(decisions)
    unknown = set(result.fills["order_id"].to_list()) - set(_engine_ids(every))
    if unknown:
        raise GapError(f"the replay placed orders no decision explains: {sorted(unknown)}")
    owner: dict[str, str] = {}
    for engine_id, cid in zip(engine_ids, ids):
        owner.setdefault(engine_id, cid)  # a repeated decision at one instant is ignored by the engine
    backtest = result.fills.with_columns(
        pl.col("order_id").replace_strict(owner, default=None).alias("client_order_id"),
        (pl.col("commission") + pl.col("fees")).alias("commission"),
    ).filter(pl.col("client_order_id").is_not_null()).select("client_order_id", "ts", "qty", "price", "commission")

    marks = dict(bars.group_by("symbol").agg(pl.col("close").sort_by("ts").last()).iter_rows())
    outcomes = result.decisions["outcome"].to_list()  # signal_frame kept our (at, symbol) order
    rows = [_compare(d, _totals(paper, d["client_order_id"]), _totals(backtest, d["client_order_id"]),
                     marks.get(d["symbol"]), outcome)
            for d, outcome in zip(decisions.iter_rows(named=True), outcomes)]
    frame = pl.DataFrame(rows, schema=_ROW_SCHEMA)
    return GapReport(session=session, costs=costs, decisions=frame, trades=_round_trips(frame),
                     paper_pnl=float(frame["paper_pnl"].sum()), backtest_pnl=float(frame["backtest_pnl"].sum()))


def _engine_ids(decisions: pl.DataFrame) -> list[str]:
    """The order id the engine gives each decision's order: symbol, instant, action."""
    return [f"{d['symbol']}-{to_us(d['at'])}-{d['action']}" for d in decisions.iter_rows(named=True)]


def _totals(fills: pl.DataFrame, client_order_id: str) -> tuple[float, float | None, list[datetime], float]:
    """Filled qty, average price, fill times (in order) and commission of one order's fills."""
    mine = fills.filter(pl.col("client_order_id") == client_order_id)
    qty = float(mine["qty"].sum()) if mine.height else 0.0
    if qty <= _EPS:
        return 0.0, None, [], 0.0
    return (qty, float((mine["qty"] * mine["price"]).sum()) / qty, sorted(set(mine["ts"].to_list())),
            float(mine["commission"].sum()))


_ROW_SCHEMA = {
    "client_order_id": pl.String, "decided_at": pl.Datetime("us", "UTC"), "symbol": pl.String, "action": pl.String,
    "outcome": pl.String, "backtest_outcome": pl.String,
    "paper_qty": pl.Float64, "backtest_qty": pl.Float64, "paper_price": pl.Float64, "backtest_price": pl.Float64,
    "paper_time": pl.Datetime("us", "UTC"), "backtest_time": pl.Datetime("us", "UTC"),
    "paper_commission": pl.Float64, "backtest_commission": pl.Float64, "mark": pl.Float64,
    "paper_pnl": pl.Float64, "backtest_pnl": pl.Float64, "gap": pl.Float64, "cause": pl.String,
    **dict.fromkeys(CAUSES, pl.Float64),
}


def _compare(decision: dict, paper: tuple, backtest: tuple, mark: float | None, outcome: str) -> dict:
    """One decision's fills on both sides, valued at `mark`, and its gap split by cause."""
    (qp, pp, tp, cp), (qb, pb, tb, cb) = paper, backtest
    s = 1.0 if decision["action"] == Action.ENTER else -1.0
    m = mark if mark is not None else (pp or pb or 0.0)
    causes = dict.fromkeys(CAUSES, 0.0)
    common = min(qp, qb)
    if common > _EPS:
        # The same bars: the price is the fill model's; other bars (or spread over more): timing.
        causes["slippage" if tp == tb else "timing"] = s * common * (pb - pp)
        causes["commission"] = cb - cp
    if abs(qp - qb) > _EPS:
        extra = s * (qp - qb) * (m - (pp if qp > qb else pb))
        if qp <= _EPS:
            causes["missed_fill"] = extra + cb  # the backtest paid a commission paper did not
        elif qb <= _EPS:
            causes["extra_fill"] = extra - cp
        else:
            causes["partial_fill"] = extra
    paper_pnl = s * qp * (m - (pp or 0.0)) - cp
    backtest_pnl = s * qb * (m - (pb or 0.0)) - cb
    biggest = max(CAUSES, key=lambda c: abs(causes[c]))
    return {
        "client_order_id": decision["client_order_id"], "decided_at": decision["at"], "symbol": decision["symbol"],
        "action": decision["action"], "outcome": decision["outcome"], "backtest_outcome": outcome,
        "paper_qty": qp, "backtest_qty": qb, "paper_price": pp, "backtest_price": pb,
        "paper_time": tp[0] if tp else None, "backtest_time": tb[0] if tb else None,
        "paper_commission": cp, "backtest_commission": cb, "mark": mark,
        "paper_pnl": paper_pnl, "backtest_pnl": backtest_pnl, "gap": paper_pnl - backtest_pnl,
        "cause": biggest if abs(causes[biggest]) > _EPS else "", **causes,
    }


def _round_trips(frame: pl.DataFrame) -> pl.DataFrame:
    """Per symbol: an entry and the decisions up to its exit make one round trip."""
    trip_of, open_trip, n = [], {}, 0
    for symbol, action in frame.select("symbol", "action").iter_rows():
        if symbol not in open_trip:
            n += 1
            open_trip[symbol] = n
        trip_of.append(open_trip[symbol])
        if action == Action.EXIT:
            del open_trip[symbol]
    if not trip_of:
        return pl.DataFrame(schema={"symbol": pl.String, "entered_at": pl.Datetime("us", "UTC"),
                                    "exited_at": pl.Datetime("us", "UTC"), "paper_pnl": pl.Float64,
                                    "backtest_pnl": pl.Float64, "gap": pl.Float64, "cause": pl.String})
    marked = frame.with_columns(pl.Series("_trip", trip_of))
    trips = marked.group_by("_trip", maintain_order=True).agg(
        pl.col("symbol").first(), pl.col("decided_at").first().alias("entered_at"),
        pl.col("decided_at").filter(pl.col("action") == Action.EXIT.value).last().alias("exited_at"),
        pl.col("paper_pnl").sum(), pl.col("backtest_pnl").sum(), pl.col("gap").sum(),
        *[pl.col(c).sum() for c in CAUSES],
    )
    biggest = pl.concat_list([pl.col(c).abs() for c in CAUSES]).list.arg_max()
    cause = pl.when(pl.col("gap").abs() > _EPS).then(
        biggest.replace_strict(dict(enumerate(CAUSES)), return_dtype=pl.String)).otherwise(pl.lit(""))
    return trips.select("symbol", "entered_at", "exited_at", "paper_pnl", "backtest_pnl", "gap", cause.alias("cause"))


# -- storing -------------------------------------------------------------------------------


def store_gap(warehouse: Warehouse, report: GapReport, *, now: datetime | None = None) -> None:
    """One `paper_gaps` row per session; measuring it again replaces it."""
    totals = report.totals
    detail = {"decisions": report.decisions.to_dicts(), "trades": report.trades.to_dicts()}
    with warehouse.write() as con:
        con.execute(
            "INSERT OR REPLACE INTO paper_gaps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [report.session.session_id, report.session.strategy, report.session.params_hash,
             report.session.session_date, json.dumps(asdict(report.costs)), now or datetime.now(UTC),
             report.decisions.height, report.trades.height, report.paper_pnl, report.backtest_pnl, report.gap,
             *[totals[c] for c in CAUSES], json.dumps(detail, default=str)])
