"""Corporate actions applied to a backtest without look-ahead.

Raw prices stay as the source sent them; two views are derived from them and the actions:
- What a strategy sees at t: every bar back-adjusted by the actions that are in effect (ex-date
  reached) and knowable by t, so the latest bar keeps its traded price and a 2-for-1 split is no
  50% fall. The view only changes at those instants, so `adjusted_signals` runs the strategy once
  per span between them, on the history cut at the span's end: decisions before an action was
  knowable are the ones the strategy takes without it.
- What the engine books: positions in units of the symbol's first share. A split changes share
  count and price together and keeps the value; a distribution or spin-off (and a dividend in
  total-return mode) is reinvested in the stock at its ex-date; a fraction of a share left by
  either is paid in cash at the ex-date open. Fills are reported back in shares as traded, trades
  at prices adjusted to their exit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from tapeflow.backtest.costs import Commission
from tapeflow.calendar.exchange import ny_day_bounds
from tapeflow.model import ActionKind, AdjustMode, Side
from tapeflow.schemas import UTC_TS
from tapeflow.strategy.base import Strategy
from tapeflow.strategy.history import History

PRICED_KINDS: dict[AdjustMode, tuple[ActionKind, ...]] = {
    AdjustMode.RAW: (),
    AdjustMode.SPLITS: (ActionKind.SPLIT, ActionKind.REVERSE_SPLIT, ActionKind.SPECIAL_DISTRIBUTION, ActionKind.SPIN_OFF),
    AdjustMode.TOTAL_RETURN: (ActionKind.SPLIT, ActionKind.REVERSE_SPLIT, ActionKind.SPECIAL_DISTRIBUTION,
                              ActionKind.SPIN_OFF, ActionKind.CASH_DIVIDEND),
}
SPLIT_KINDS = (ActionKind.SPLIT.value, ActionKind.REVERSE_SPLIT.value)
MODE_WORDS = {
    AdjustMode.RAW: "raw prices as traded: no corporate action is applied",
    AdjustMode.SPLITS: ("split-adjusted: splits, reverse splits, spin-offs and special distributions, each from "
                        "the later of its ex-date and the moment it was knowable; regular dividends are not applied"),
    AdjustMode.TOTAL_RETURN: ("total return: splits, spin-offs, special distributions and regular cash dividends, "
                              "each from the later of its ex-date and the moment it was knowable"),
}
HOLDING_WORDS = ("positions keep their value across an action: a split changes shares and price together, a "
                 "distribution, spin-off or dividend is reinvested in the stock at the ex-date open, and a "
                 "fraction of a share is paid in cash then")
_US = timedelta(microseconds=1)


@dataclass(frozen=True)
class PricedActions:
    """The actions a backtest applies (with their price multipliers) and those it cannot."""

    mode: AdjustMode
    # symbol, kind, ex_date, ex_start, effective, multiplier, volume_multiplier, ratio, amount, price_factor, source
    applied: pl.DataFrame
    skipped: pl.DataFrame  # symbol, kind, ex_date, reason

    @property
    def steps(self) -> pl.DataFrame:
        """(symbol, ex_start, scale): shares per first-bar share from each ex-date on, the engine's units."""
        return self.applied.sort("symbol", "ex_start").select(
            "symbol", "ex_start", (1 / pl.col("multiplier")).cum_prod().over("symbol").alias("scale"))

    def lines(self) -> list[str]:
        """One line per action inside the window, for the report's assumptions."""
        out = [f"{r['symbol']} {r['ex_date']} {_words(r)}" for r in self.applied.sort("ex_date", "symbol").iter_rows(named=True)]
        out += [f"{r['symbol']} {r['ex_date']} {r['kind'].replace('_', ' ')}: not applied ({r['reason']})"
                for r in self.skipped.sort("ex_date", "symbol").iter_rows(named=True)]
        return out


def _words(row: dict) -> str:
    kind = row["kind"]
    if kind in SPLIT_KINDS:
        ratio = row["ratio"]
        shares = f"{ratio:g}-for-1" if ratio >= 1 else f"1-for-{1 / ratio:g}"
        return f"{kind.replace('_', ' ')} {shares} (prices before x{row['multiplier']:.4g})"
    paid = f"${row['amount']:g}/share" if row["amount"] is not None else f"value kept {row['price_factor']:.4g}"
    return f"{kind.replace('_', ' ')} {paid} (prices before x{row['multiplier']:.4g}; from {row['source']})"


def price_actions(history: History, mode: AdjustMode) -> PricedActions:
    """The history's actions that change its bars, priced: a split by its ratio, a cash amount
    against the last close before its ex-date, a spin-off by the value a share keeps."""
    mode = AdjustMode(mode)
    bars = history.bars
    empty_applied = pl.DataFrame(schema={
        "symbol": pl.String, "kind": pl.String, "ex_date": pl.Date, "ex_start": UTC_TS, "effective": UTC_TS,
        "multiplier": pl.Float64, "volume_multiplier": pl.Float64, "ratio": pl.Float64, "amount": pl.Float64,
        "price_factor": pl.Float64, "source": pl.String})
    empty_skipped = pl.DataFrame(schema={"symbol": pl.String, "kind": pl.String, "ex_date": pl.Date, "reason": pl.String})
    actions = history.actions.unique(["symbol", "kind", "ex_date"], keep="first", maintain_order=True)
    if actions.is_empty() or bars.is_empty():
        return PricedActions(mode, empty_applied, empty_skipped)
    starts = {d: ny_day_bounds(d)[0] for d in actions["ex_date"].unique().to_list()}
    span = bars.group_by("symbol").agg(pl.col("ts").min().alias("_first"), pl.col("end_ts").max().alias("_last"))
    actions = actions.with_columns(
        pl.col("ex_date").replace_strict(starts, return_dtype=UTC_TS).alias("ex_start"),
    ).join(span, on="symbol", how="inner").filter(
        # Only an ex-date after a symbol's first bar and before its last changes anything.
        (pl.col("ex_start") > pl.col("_first")) & (pl.col("ex_start") < pl.col("_last"))
    ).sort("ex_start")
    before = bars.select("symbol", "end_ts", pl.col("close").alias("_previous_close")).sort("end_ts")
    actions = actions.join_asof(before, left_on="ex_start", right_on="end_ts", by="symbol", strategy="backward",
                              check_sortedness=False)
    kind, amount, factor, previous = pl.col("kind"), pl.col("amount"), pl.col("price_factor"), pl.col("_previous_close")
    multiplier = (
        pl.when(kind.is_in(SPLIT_KINDS)).then(1 / pl.col("ratio"))
        .when(amount.is_not_null() & previous.is_not_null() & (amount < previous)).then(1 - amount / previous)
        .when(factor.is_not_null()).then(factor)
    )
    wanted = [k.value for k in PRICED_KINDS[mode]]
    reason = (
        pl.when(~kind.is_in(wanted)).then(pl.lit(f"{mode.value} mode does not apply it"))
        .when(amount.is_not_null() & previous.is_null() & factor.is_null()).then(pl.lit("no close before its ex-date to price it"))
        .when(amount.is_not_null() & (amount >= previous) & factor.is_null()).then(pl.lit("its amount is not below the last close"))
        .when(multiplier.is_null()).then(pl.lit("the value it takes from a share is unknown"))
    )
    marked = actions.with_columns(multiplier.alias("multiplier"), reason.alias("reason"))
    applied = marked.filter(pl.col("reason").is_null()).select(
        "symbol", "kind", "ex_date", "ex_start",
        pl.max_horizontal("ex_start", "knowable_at").alias("effective"),
        "multiplier",
        pl.when(kind.is_in(SPLIT_KINDS)).then(pl.col("ratio")).otherwise(1.0).alias("volume_multiplier"),
        "ratio", "amount", "price_factor", "source",
    )
    # Cash dividends left out by the mode are too many to list one by one; they are a count.
    skipped = marked.filter(pl.col("reason").is_not_null() & ~((kind == ActionKind.CASH_DIVIDEND.value) & ~kind.is_in(wanted)))
    return PricedActions(mode, conform_to(applied, empty_applied), skipped.select("symbol", "kind", "ex_date", "reason"))


def conform_to(frame: pl.DataFrame, like: pl.DataFrame) -> pl.DataFrame:
    return frame.select(pl.col(c).cast(t) for c, t in like.schema.items())


def _suffix(rows: pl.DataFrame, on: str, actions: pl.DataFrame, column: str) -> pl.Series:
    """Per row: the product of `column` over its symbol's actions whose ex-date starts after row[on]."""
    products = actions.sort("symbol", "ex_start").select(
        "symbol", "ex_start", pl.col(column).reverse().cum_prod().reverse().over("symbol").alias("_product")
    ).sort("ex_start")
    marked = rows.select("symbol", on).with_row_index("_row").sort(on).join_asof(
        products, left_on=on, right_on="ex_start", by="symbol", strategy="forward", allow_exact_matches=False,
        check_sortedness=False)
    return marked.sort("_row")["_product"].fill_null(1.0)


def view(history: History, applied: pl.DataFrame) -> History:
    """`history` with its bars back-adjusted by the `applied` actions (their latest bar unchanged)."""
    if applied.is_empty():
        return history
    price = _suffix(history.bars, "ts", applied, "multiplier")
    volume = _suffix(history.bars, "ts", applied, "volume_multiplier")
    bars = history.bars.with_columns(
        *(pl.col(c) * price for c in ("open", "high", "low", "close")), pl.col("volume") * volume)
    return History(bars=bars, watchlist=history.watchlist, news=history.news, actions=history.actions,
                   liquidity=history.liquidity)


def view_at(history: History, mode: AdjustMode, at) -> History:  # type: ignore[no-untyped-def]
    """What a strategy sees at `at`: the history cut there, adjusted by what was in effect and known then."""
    cut = history.until(at)
    priced = price_actions(cut, mode)
    return view(cut, priced.applied.filter(pl.col("effective") <= at))


def adjusted_signals(strategy: Strategy, history: History, priced: PricedActions) -> pl.DataFrame:
    """The strategy's decisions, each taken on the view of its own moment: one run per span
    between the instants an action took effect, on the history cut at the span's end (for a
    strategy that decides each symbol apart, only the symbols with actions run span by span)."""
    applied = priced.applied
    if applied.is_empty():
        return strategy.signals(history)
    if strategy.per_symbol:
        touched = applied["symbol"].unique().sort().to_list()
        rest = history.only(touched, keep=False)
        parts = [strategy.signals(rest)] if rest.bars.height else []
        parts += [_spans(strategy, history.only([s]), applied.filter(pl.col("symbol") == s)) for s in touched]
        return pl.concat(parts, how="vertical_relaxed").sort("at", "symbol", maintain_order=True)
    return _spans(strategy, history, applied)


def _spans(strategy: Strategy, history: History, applied: pl.DataFrame) -> pl.DataFrame:
    first_end = history.bars["end_ts"].min()
    bounds = applied.filter(pl.col("effective") > first_end)["effective"].unique().sort().to_list()
    parts = []
    for lo, hi in zip([None, *bounds], [*bounds, None]):
        known = applied.filter(pl.col("effective") <= (lo if lo is not None else first_end))
        span = history if hi is None else history.until(hi - _US)
        signals = strategy.signals(view(span, known))
        if lo is not None:
            signals = signals.filter(pl.col("at") >= lo)
        if hi is not None:
            signals = signals.filter(pl.col("at") < hi)
        parts.append(signals)
    return pl.concat(parts, how="vertical_relaxed")


def scale_at(rows: pl.DataFrame, on: str, steps: pl.DataFrame) -> pl.Series:
    """Per row: shares per first-bar share at row[on] (1 before the symbol's first action)."""
    if steps.is_empty() or rows.is_empty():
        return pl.Series("scale", [1.0] * rows.height, dtype=pl.Float64)
    marked = rows.select("symbol", pl.col(on).cast(UTC_TS)).with_row_index("_row").sort(on).join_asof(
        steps.sort("ex_start"), left_on=on, right_on="ex_start", by="symbol", strategy="backward",
        check_sortedness=False)
    return marked.sort("_row")["scale"].fill_null(1.0).alias("scale")


def to_units(bars: pl.DataFrame, steps: pl.DataFrame) -> pl.DataFrame:
    """Bars in the engine's units: prices x scale, volume / scale, and the scale itself."""
    scale = scale_at(bars, "ts", steps)
    return bars.with_columns(
        *(pl.col(c) * scale for c in ("open", "high", "low", "close")), pl.col("volume") / scale, scale)


def cash_in_lieu(fills: pl.DataFrame, steps: pl.DataFrame, bars: pl.DataFrame, commission: Commission) -> pl.DataFrame:
    """`fills` (in units) with the fraction of a share an action leaves sold at the ex-date
    open, free of costs, and the later sells of that symbol smaller by as much (their
    commission and fees charged again on what they now sell)."""
    if steps.is_empty() or fills.is_empty():
        return fills
    rows = fills.to_dicts()
    changed: set[str] = set()
    for symbol, ex_start, scale in steps.sort("symbol", "ex_start").iter_rows():
        mine = [r for r in rows if r["symbol"] == symbol]
        held = sum(r["qty"] if r["side"] == Side.BUY.value else -r["qty"] for r in mine if r["ts"] < ex_start)
        shares = held * scale
        fraction = shares - math.floor(shares + 1e-6)
        if held <= 1e-9 or fraction <= 1e-6:
            continue
        bar = bars.filter((pl.col("symbol") == symbol) & (pl.col("ts") >= ex_start)).head(1)
        if bar.is_empty():
            continue
        units = left = fraction / scale
        for r in sorted((r for r in mine if r["side"] == Side.SELL.value and r["ts"] >= ex_start), key=lambda r: r["ts"]):
            take = min(left, r["qty"])
            r["qty"] -= take
            left -= take
            changed.add(r["order_id"])
            if left <= 1e-12:
                break
        rows.append({**dict.fromkeys(("commission", "fees", "slippage"), 0.0),
                     "order_id": f"{symbol}-{ex_start:%Y%m%d}-in-lieu", "symbol": symbol, "side": Side.SELL.value,
                     "ts": bar["ts"][0], "qty": units, "price": float(bar["open"][0])})
    if not changed:
        return fills
    _charge_again(rows, changed, steps, commission)
    out = pl.DataFrame(rows, schema=fills.schema)
    return out.filter(pl.col("qty") > 1e-12).sort("ts", maintain_order=True)


def _charge_again(rows: list[dict], orders: set[str], steps: pl.DataFrame, commission: Commission) -> None:
    """An order's commission and fees, on its last fill, for the shares it now sells."""
    for order_id in orders:
        mine = [r for r in rows if r["order_id"] == order_id]
        shares = scale_at(pl.DataFrame(mine, schema_overrides={"ts": UTC_TS}).select("symbol", "ts"), "ts", steps)
        traded = sum(r["qty"] * k for r, k in zip(mine, shares.to_list()))
        value = sum(r["qty"] * r["price"] for r in mine)
        for r in mine:
            r["commission"] = r["fees"] = 0.0
        mine[-1]["commission"] = commission.commission(traded, value) if traded > 1e-9 else 0.0
        mine[-1]["fees"] = commission.fees(Side.SELL, traded, value) if traded > 1e-9 else 0.0


def fills_as_traded(fills: pl.DataFrame, steps: pl.DataFrame) -> pl.DataFrame:
    """Fills in shares and prices as traded (the engine books them in units)."""
    if steps.is_empty() or fills.is_empty():
        return fills
    scale = scale_at(fills, "ts", steps)
    return fills.with_columns(pl.col("qty") * scale, pl.col("price") / scale)


def trades_as_traded(trades: pl.DataFrame, steps: pl.DataFrame) -> pl.DataFrame:
    """Round trips in the shares of their exit: entry and exit prices on one footing."""
    if steps.is_empty() or trades.is_empty():
        return trades
    scale = scale_at(trades, "exit_ts", steps)
    return trades.with_columns(pl.col("qty") * scale, pl.col("entry_price") / scale, pl.col("exit_price") / scale)
