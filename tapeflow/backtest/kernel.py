"""The engine's event loop compiled: `engine._walk_signals` step for step over arrays, for
market, limit and stop orders (DAY or GTC) under the whole execution policy and cost model.

Same rules, same order of floating-point operations, so the same fills to the last bit:
`tests/backtest/test_compiled.py` holds it equal to the Python event loop on random bars,
signals and configs. Numba compiles it once per machine (cached beside this file). What it
returns are codes and numbers; `tapeflow/backtest/compiled.py` turns them into order ids,
outcomes and the fills frame.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
from numba import njit, types
from numba.typed import List

# order kinds, types, times in force (codes shared with compiled.py)
ENTER, EXIT, FLAT, STOP_LOSS = 0, 1, 2, 3
MARKET, LIMIT, STOP = 0, 1, 2
DAY, GTC = 0, 1
# decision outcomes; PLACED_ORDER means "an order, settled at the end"
(NO_BARS, CLOSING, BUSY, DAILY_LOSS, NO_PRICE, SIZED_TO_ZERO, NO_BUYING_POWER, NOTHING_TO_EXIT,
 CANCELLED_ENTRY, PLACED_ORDER) = range(10)

# float parameters, by position in `params`
(P_CASH, P_BP_MULTIPLE, P_PARTICIPATION, P_ROUND_TICK, P_SLIP_BPS, P_SLIP_MODEL, P_HALF_SPREAD_BPS, P_FALLBACK_ADV,
 P_FALLBACK_SIGMA, P_IMPACT_Y, P_PER_SHARE, P_PER_ORDER, P_MINIMUM, P_MAXIMUM_PCT, P_SEC_FEE, P_TAF, P_TAF_MAXIMUM,
 P_FRACTION, P_MAX_POSITIONS, P_RISK_PER_TRADE, P_MAX_POSITION_PCT, P_STOP_LOSS, P_DAILY_LOSS, P_FLATTEN_ON_BREAKER,
 N_PARAMS) = range(25)


@njit(cache=True)
def _tick_round(price: float, buy: bool) -> float:
    """`tapeflow.risk.policy.tick_round`."""
    if price >= 1:
        steps = price / 0.01
        steps = math.ceil(steps - 1e-9) if buy else math.floor(steps + 1e-9)
        return steps / 100
    steps = price / 0.0001
    steps = math.ceil(steps - 1e-9) if buy else math.floor(steps + 1e-9)
    return steps / 10_000


@njit(cache=True)
def _half_spread(p: np.ndarray, anchor_adv: np.ndarray, anchor_bps: np.ndarray, adv: float) -> float:
    """`LiquidityModel.half_spread` (adv already through `_adv`)."""
    if not math.isnan(p[P_HALF_SPREAD_BPS]):
        return p[P_HALF_SPREAD_BPS] / 10_000
    n = len(anchor_adv)
    if adv <= anchor_adv[0]:
        return anchor_bps[0] / 10_000
    if adv >= anchor_adv[n - 1]:
        return anchor_bps[n - 1] / 10_000
    for k in range(n - 1):
        a0, b0, a1, b1 = anchor_adv[k], anchor_bps[k], anchor_adv[k + 1], anchor_bps[k + 1]
        if adv <= a1:
            share = (math.log(adv) - math.log(a0)) / (math.log(a1) - math.log(a0))
            return (b0 + share * (b1 - b0)) / 10_000
    return anchor_bps[n - 1] / 10_000


@njit(cache=True)
def _fill_price(p: np.ndarray, anchor_adv: np.ndarray, anchor_bps: np.ndarray, buy: bool, reference: float, qty: float,
                adv_dollars: float, sigma_daily: float) -> float:
    """`Slippage.fill_price` at scale 1."""
    if p[P_SLIP_MODEL] == 0.0:
        fraction = p[P_SLIP_BPS] / 10_000
        return reference * (1 + fraction) if buy else reference * (1 - fraction)
    adv = adv_dollars if (math.isfinite(adv_dollars) and adv_dollars > 0) else p[P_FALLBACK_ADV]
    sigma = sigma_daily if math.isfinite(sigma_daily) else p[P_FALLBACK_SIGMA]
    participation = min(max(abs(qty * reference), 0.0) / adv, 1.0)
    fraction = _half_spread(p, anchor_adv, anchor_bps, adv) + p[P_IMPACT_Y] * sigma * math.sqrt(participation)
    tick = 0.01 if reference >= 1 else 0.0001
    move = max(reference * fraction, tick * 1.0)
    return reference + move if buy else reference - move


@njit(cache=True)
def _commission(p: np.ndarray, qty: float, value: float) -> float:
    """`Commission.commission`."""
    fee = max(p[P_PER_SHARE] * qty + p[P_PER_ORDER], p[P_MINIMUM])
    if not math.isnan(p[P_MAXIMUM_PCT]):
        fee = min(fee, p[P_MAXIMUM_PCT] * value)
    return fee if qty > 0 else 0.0


@njit(cache=True)
def _fees(p: np.ndarray, buy: bool, qty: float, value: float) -> float:
    """`Commission.fees`: sells only."""
    if buy or not qty > 0:
        return 0.0
    return p[P_SEC_FEE] * value + min(p[P_TAF] * qty, p[P_TAF_MAXIMUM])


BLOCK, BLOCK2 = 64, 4096  # bars per block of the range extremes that touch searches skip with


def blocks(values: np.ndarray, size: int, low: bool) -> np.ndarray:
    """Each block's lowest (or highest) value, for the touch searches (NaN keeps a block open)."""
    n = -(-len(values) // size) * size
    padded = np.full(n, np.inf if low else -np.inf)
    padded[:len(values)] = values
    shaped = padded.reshape(-1, size)
    return shaped.min(axis=1) if low else shaped.max(axis=1)


@njit(cache=True)
def _first_low_at_most(i, end, price, low, block_low, block2_low):
    """The first bar in [i, end) whose low reaches down to `price`, or -1."""
    while i < end:
        if i % BLOCK2 == 0 and i + BLOCK2 <= end and block2_low[i // BLOCK2] > price:
            i += BLOCK2
        elif i % BLOCK == 0 and i + BLOCK <= end and block_low[i // BLOCK] > price:
            i += BLOCK
        elif low[i] <= price:
            return i
        else:
            i += 1
    return -1


@njit(cache=True)
def _first_high_at_least(i, end, price, high, block_high, block2_high):
    """The first bar in [i, end) whose high reaches up to `price`, or -1."""
    while i < end:
        if i % BLOCK2 == 0 and i + BLOCK2 <= end and block2_high[i // BLOCK2] < price:
            i += BLOCK2
        elif i % BLOCK == 0 and i + BLOCK <= end and block_high[i // BLOCK] < price:
            i += BLOCK
        elif high[i] >= price:
            return i
        else:
            i += 1
    return -1


@njit(cache=True)
def _orders():
    """Empty order columns: kind, symbol, buy, qty, type, limit, stop, placed, parent, working,
    cancelled, filled qty, filled value, charged, any fill applied, settled, commission, fees."""
    return (List.empty_list(types.int64), List.empty_list(types.int64), List.empty_list(types.boolean),
            List.empty_list(types.float64), List.empty_list(types.int64), List.empty_list(types.float64),
            List.empty_list(types.float64), List.empty_list(types.int64), List.empty_list(types.int64),
            List.empty_list(types.boolean), List.empty_list(types.boolean), List.empty_list(types.float64),
            List.empty_list(types.float64), List.empty_list(types.float64), List.empty_list(types.boolean),
            List.empty_list(types.boolean), List.empty_list(types.float64), List.empty_list(types.float64))


@njit(cache=True)
def _new_order(orders, kind, s, buy, qty, otype, limit, stop, placed, parent):
    (o_kind, o_sym, o_buy, o_qty, o_type, o_limit, o_stop, o_placed, o_parent, o_working, o_cancelled, o_filled_qty,
     o_filled_value, o_charged, o_any, o_done, o_commission, o_fees) = orders
    o_kind.append(kind)
    o_sym.append(s)
    o_buy.append(buy)
    o_qty.append(qty)
    o_type.append(otype)
    o_limit.append(limit)
    o_stop.append(stop)
    o_placed.append(placed)
    o_parent.append(parent)
    o_working.append(False)
    o_cancelled.append(False)
    o_filled_qty.append(0.0)
    o_filled_value.append(0.0)
    o_charged.append(0.0)
    o_any.append(False)
    o_done.append(False)
    o_commission.append(0.0)
    o_fees.append(0.0)
    return len(o_kind) - 1


@njit(cache=True)
def _fills():
    """Empty fill columns, as computed when their order is placed: order, instant, qty, price, reference."""
    return (List.empty_list(types.int64), List.empty_list(types.int64), List.empty_list(types.float64),
            List.empty_list(types.float64), List.empty_list(types.float64))


@njit(cache=True)
def _last_close(bars, s, at):
    """Close of symbol `s`'s last bar ended by `at`, or NaN."""
    end, close, sym_lo, sym_hi = bars[1], bars[5], bars[14], bars[15]
    lo, hi = sym_lo[s], sym_hi[s]
    j = np.searchsorted(end[lo:hi], at, side="right") - 1
    return close[lo + j] if j >= 0 else math.nan


@njit(cache=True)
def _or_zero(x):
    return 0.0 if math.isnan(x) else x


@njit(cache=True)
def run(bars, sig_sym, sig_at, sig_enter, sig_qty, sig_type, sig_tif, sig_limit, sig_stop, sig_session,
        sig_session_start, close_exit, close_reopen, costs):
    """The event loop over `bars` (the columns `compiled.walk` builds) and the decisions.
    Returns (per decision: outcome, order, two detail figures), (per order: kind, symbol,
    placed, parent, any fill applied, commission, fees) and (per applied fill: order, time,
    quantity, price, reference)."""
    p = costs[0]
    n_sym = len(bars[14])
    n_sig = len(sig_at)
    cash = p[P_CASH]
    position = np.zeros(n_sym)
    held_order = List.empty_list(types.int64)  # symbols in the order they first got a fill (the book's dict order)
    open_count = np.zeros(n_sym, dtype=np.int64)  # orders working per symbol
    orders = _orders()
    working = List.empty_list(types.int64)  # working orders, in the order they were placed
    fills = _fills()
    applied = List.empty_list(types.int64)
    # heap of (instant, sequence, what: 0 a fill / 1 its order stops working, index)
    pending = [(np.int64(0), np.int64(0), np.int64(0), np.int64(0))]
    pending.pop()
    book = (position, held_order, open_count, working, applied)
    seq = 0

    out_code = np.empty(n_sig, dtype=np.int64)
    out_order = np.full(n_sig, -1, dtype=np.int64)
    out_a = np.full(n_sig, np.nan)
    out_b = np.full(n_sig, np.nan)

    # the daily-loss breaker: its session, reference equity and whether (and at what equity) it tripped
    limit_pct = p[P_DAILY_LOSS]
    observed = np.int64(-(2**62))
    brk_session = np.int64(-(2**62))
    brk_start, brk_tripped, brk_tripped_at = 0.0, False, 0.0

    event, n_events = 0, len(close_exit)
    for k in range(n_sig + 1):
        at = sig_at[k] if k < n_sig else np.int64(2**62)
        # the clock's rules first: time exits at or before this decision (all that are left at the end)
        while event < n_events and (k == n_sig or close_exit[event] <= at):
            e_at = close_exit[event]
            event += 1
            cash = _apply_until(e_at, True, pending, orders, fills, book, cash, p)
            seq = _flatten(e_at, bars, orders, fills, book, pending, seq, costs)
        if k == n_sig:
            break
        # the breaker's reference: the equity the New York day started with (at its midnight)
        if not math.isnan(limit_pct) and sig_session[k] != observed:
            observed = sig_session[k]
            start = sig_session_start[k]
            cash = _apply_until(start, True, pending, orders, fills, book, cash, p)
            if observed != brk_session:
                brk_session, brk_tripped = observed, False
                brk_start = _equity_at(bars, book, start, cash)
        cash = _apply_until(at, True, pending, orders, fills, book, cash, p)

        s = sig_sym[k]
        if s < 0:
            out_code[k] = NO_BARS
            continue
        i = np.searchsorted(close_exit, at, side="right") - 1  # the last time exit by now, until its reopen
        if i >= 0 and at < close_reopen[i]:
            out_code[k] = CLOSING
            continue
        held = position[s]
        if not sig_enter[k]:
            if held == 0 and open_count[s] == 0:
                out_code[k] = NOTHING_TO_EXIT
                continue
            _cancel_symbol(s, orders, book, p)
            if held <= 0:
                out_code[k] = CANCELLED_ENTRY
                continue
            order = _new_order(orders, EXIT, s, False, held, sig_type[k], sig_limit[k], sig_stop[k], at, -1)
            out_code[k], out_order[k] = PLACED_ORDER, order
            _, seq = _place(order, sig_tif[k], bars, orders, fills, book, pending, seq, costs)
            continue
        # an entry: the gates, then the policy's size
        if held != 0 or open_count[s] > 0:
            out_code[k] = BUSY
            continue
        equity = _equity_at(bars, book, at, cash)
        if not math.isnan(limit_pct) and sig_session[k] == brk_session and brk_start > 0:
            if not brk_tripped and equity / brk_start - 1 <= -limit_pct:
                brk_tripped, brk_tripped_at = True, equity
            if brk_tripped:
                out_code[k], out_a[k], out_b[k] = DAILY_LOSS, brk_tripped_at, brk_start
                if p[P_FLATTEN_ON_BREAKER] != 0.0:
                    seq = _flatten(at, bars, orders, fills, book, pending, seq, costs)
                continue
        buying_power = math.inf
        if not math.isnan(p[P_BP_MULTIPLE]):
            buying_power = _buying_power(bars, orders, book, at, equity, p[P_BP_MULTIPLE])
        code, qty, detail = _entry_size(bars, book, s, at, sig_qty[k], equity, buying_power, p)
        if code >= 0:
            out_code[k], out_a[k] = code, detail
            continue
        order = _new_order(orders, ENTER, s, True, qty, sig_type[k], sig_limit[k], sig_stop[k], at, -1)
        out_code[k], out_order[k] = PLACED_ORDER, order
        first_fill = len(fills[0])
        until, seq = _place(order, sig_tif[k], bars, orders, fills, book, pending, seq, costs)
        if len(fills[0]) > first_fill and not math.isnan(p[P_STOP_LOSS]):
            seq = _protect(order, first_fill, until + 1, s, bars, orders, fills, book, pending, seq, costs)

    cash = _apply_until(0, False, pending, orders, fills, book, cash, p)
    return out_code, out_order, out_a, out_b, _order_columns(orders), _applied_columns(fills, applied)


@njit(cache=True)
def _entry_size(bars, book, s, at, asked, equity, buying_power, p):
    """`ExecutionPolicy.entry` at the last close: (-1, shares, 0) or (the refusing outcome, 0, its figure)."""
    position, open_count = book[0], book[2]
    price = _last_close(bars, s, at)
    needs_price = math.isnan(asked) or not math.isnan(p[P_MAX_POSITION_PCT]) or math.isfinite(buying_power)
    has_price = math.isfinite(price) and price > 0
    if needs_price and not has_price:
        return (SIZED_TO_ZERO if math.isnan(asked) else NO_PRICE), 0.0, math.nan
    qty = asked
    if math.isnan(asked):
        slots = 0  # positions held plus symbols with an order working
        for t in range(len(position)):
            if position[t] != 0 or open_count[t] > 0:
                slots += 1
        qty = 0.0
        if slots < p[P_MAX_POSITIONS]:
            shares = math.floor(min(p[P_FRACTION] * equity, buying_power) / price)
            stop_distance = price * p[P_STOP_LOSS] if not math.isnan(p[P_STOP_LOSS]) else 0.0
            if not math.isnan(p[P_RISK_PER_TRADE]) and stop_distance != 0:
                shares = min(shares, math.floor(p[P_RISK_PER_TRADE] * equity / stop_distance))
            qty = float(max(0, shares))
    if not math.isnan(p[P_MAX_POSITION_PCT]) and has_price:
        qty = min(qty, float(math.floor(p[P_MAX_POSITION_PCT] * max(equity, 0.0) / price)))
    if not qty > 0:
        return SIZED_TO_ZERO, 0.0, math.nan
    if math.isfinite(buying_power) and has_price:
        affordable = max(0, math.floor(buying_power / price))
        if affordable == 0:
            return NO_BUYING_POWER, 0.0, buying_power
        qty = min(qty, float(affordable))
    return -1, qty, math.nan


@njit(cache=True)
def _protect(entry, first_fill, placed, s, bars, orders, fills, book, pending, seq, costs):
    """The entry's protective stop for what it filled, from `placed` (the bar after it stops working)."""
    p = costs[0]
    f_qty, f_price = fills[2], fills[3]
    total_qty = 0.0
    for f in range(first_fill, len(f_qty)):
        total_qty += f_qty[f]
    total_value = 0.0
    for f in range(first_fill, len(f_qty)):
        total_value += f_qty[f] * f_price[f]
    stop_price = _tick_round(total_value / total_qty * (1 - p[P_STOP_LOSS]), False)
    stop = _new_order(orders, STOP_LOSS, s, False, total_qty, STOP, math.nan, stop_price, placed, entry)
    _, seq = _place(stop, GTC, bars, orders, fills, book, pending, seq, costs)
    return seq


@njit(cache=True)
def _order_columns(orders):
    """Kind, symbol, placed, parent, any fill applied, commission, fees: as arrays."""
    n = len(orders[0])
    kind, sym, placed, parent = (np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64),
                                 np.empty(n, dtype=np.int64))
    any_fill, commission, fees = np.empty(n, dtype=np.bool_), np.empty(n), np.empty(n)
    for o in range(n):
        kind[o], sym[o], placed[o], parent[o] = orders[0][o], orders[1][o], orders[7][o], orders[8][o]
        any_fill[o], commission[o], fees[o] = orders[14][o], orders[16][o], orders[17][o]
    return kind, sym, placed, parent, any_fill, commission, fees


@njit(cache=True)
def _applied_columns(fills, applied):
    """The applied fills in order: order, instant, qty, price, reference."""
    n = len(applied)
    order, ts, qty, price, reference = (np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64), np.empty(n),
                                        np.empty(n), np.empty(n))
    for a in range(n):
        f = applied[a]
        order[a], ts[a], qty[a], price[a], reference[a] = fills[0][f], fills[1][f], fills[2][f], fills[3][f], fills[4][f]
    return order, ts, qty, price, reference


@njit(cache=True)
def _equity_at(bars, book, at, cash):
    """`engine._equity_at`: positions in the order the book first held them."""
    position, held_order = book[0], book[1]
    value = cash
    for s in held_order:
        if position[s] != 0:
            value += position[s] * _or_zero(_last_close(bars, s, at))
    return value


@njit(cache=True)
def _buying_power(bars, orders, book, at, equity, multiple):
    """`engine._buying_power`: buys still working count at their limit, stop or the last close."""
    position, held_order, working = book[0], book[1], book[3]
    o_sym, o_buy, o_qty, o_limit, o_stop, o_filled_qty = orders[1], orders[2], orders[3], orders[5], orders[6], orders[11]
    held = 0.0
    for s in held_order:
        if position[s] != 0:
            held += abs(position[s]) * _or_zero(_last_close(bars, s, at))
    waiting = 0.0
    for o in working:
        if o_buy[o]:
            if not math.isnan(o_limit[o]) and o_limit[o] != 0:
                price = o_limit[o]
            elif not math.isnan(o_stop[o]) and o_stop[o] != 0:
                price = o_stop[o]
            else:
                price = _or_zero(_last_close(bars, o_sym[o], at))
            waiting += (o_qty[o] - o_filled_qty[o]) * price
    return max(0.0, equity * multiple - held - waiting)


@njit(cache=True)
def _settle(o, orders, p):
    """An order stopped working: its commission and fees on what it filled."""
    o_buy, o_filled_qty, o_filled_value, o_any, o_done = orders[2], orders[11], orders[12], orders[14], orders[15]
    if o_done[o] or not o_any[o]:
        return
    o_done[o] = True
    orders[16][o] = _commission(p, o_filled_qty[o], o_filled_value[o])
    orders[17][o] = _fees(p, o_buy[o], o_filled_qty[o], o_filled_value[o])


@njit(cache=True)
def _stop_working(o, orders, book):
    working, open_count = book[3], book[2]
    orders[9][o] = False
    open_count[orders[1][o]] -= 1
    for w in range(len(working)):
        if working[w] == o:
            working.pop(w)
            return


@njit(cache=True)
def _cancel_symbol(s, orders, book, p):
    """Cancel every order working in symbol `s`; each pays for what it filled."""
    doomed = List.empty_list(types.int64)
    for o in book[3]:
        if orders[1][o] == s:
            doomed.append(o)
    for o in doomed:
        _stop_working(o, orders, book)
        orders[10][o] = True
        _settle(o, orders, p)


@njit(cache=True)
def _apply_until(at, bounded, pending, orders, fills, book, cash, p):
    """`engine._apply_until`: the fills and ends of orders strictly before `at` (all: not bounded)."""
    position, held_order, applied = book[0], book[1], book[4]
    o_sym, o_buy, o_working, o_cancelled = orders[1], orders[2], orders[9], orders[10]
    o_filled_qty, o_filled_value, o_charged, o_any = orders[11], orders[12], orders[13], orders[14]
    while len(pending) > 0 and (not bounded or pending[0][0] < at):
        _, _, what, index = heapq.heappop(pending)
        o = index if what == 1 else fills[0][index]
        if o_cancelled[o]:
            continue
        if what == 1:  # it has stopped working: filled, or its time is up
            _settle(o, orders, p)
            if o_working[o]:
                _stop_working(o, orders, book)
            continue
        s, buy = o_sym[o], o_buy[o]
        qty, price = fills[2][index], fills[3][index]
        if not o_any[o] and not _in(held_order, s):
            held_order.append(s)
        sign = 1.0 if buy else -1.0
        position[s] = position[s] + sign * qty
        cash -= sign * qty * price
        applied.append(index)
        o_any[o] = True
        o_filled_qty[o] = o_filled_qty[o] + qty
        o_filled_value[o] = o_filled_value[o] + qty * price
        # commission is paid as the order fills: each fill pays what the order's total grew by
        total = _commission(p, o_filled_qty[o], o_filled_value[o]) + _fees(p, buy, o_filled_qty[o], o_filled_value[o])
        cash -= total - o_charged[o]
        o_charged[o] = total
    return cash


@njit(cache=True)
def _in(values, x):
    for v in values:  # noqa: SIM110 (numba compiles no generator passed to any())
        if v == x:
            return True
    return False


@njit(cache=True)
def _flatten(at, bars, orders, fills, book, pending, seq, costs):
    """`_Loop.flatten`: cancel every working order, sell every position at market (symbols in order)."""
    position, open_count = book[0], book[2]
    for s in range(len(position)):
        if open_count[s] > 0:
            _cancel_symbol(s, orders, book, costs[0])
    for s in range(len(position)):
        if position[s] > 0:
            order = _new_order(orders, FLAT, s, False, position[s], MARKET, math.nan, math.nan, at, -1)
            _, seq = _place(order, DAY, bars, orders, fills, book, pending, seq, costs)
    return seq


@njit(cache=True)
def _place(o, tif, bars, orders, fills, book, pending, seq, costs):
    """`engine._place` with `fills.fill_order` and `working_until`: the order's fills go on the
    heap, then the instant it stops working. Returns (that instant or -1, the next sequence)."""
    (bar_ts, _, bar_open, bar_high, bar_low, _, bar_volume, bar_session, bar_adv, bar_sigma, block_low, block2_low,
     block_high, block2_high, sym_lo, sym_hi) = bars
    p, anchor_adv, anchor_bps = costs
    f_order, f_ts, f_qty, f_price, f_ref = fills
    s = orders[1][o]
    lo, hi = sym_lo[s], sym_hi[s]
    first = lo + np.searchsorted(bar_ts[lo:hi], orders[7][o], side="left")
    if first >= hi:
        return np.int64(-1), seq  # no bar left: it never works
    end = hi
    if tif == DAY:  # to its session's last bar
        end = first
        while end < hi and bar_session[end] <= bar_session[first]:
            end += 1
    buy, otype, limit, stop, remaining = orders[2][o], orders[4][o], orders[5][o], orders[6][o], orders[3][o]
    participation = p[P_PARTICIPATION]
    triggered = False
    start_fills = len(f_order)
    i = first
    while remaining > 0 and i < end:
        if not triggered and otype != MARKET:
            # the first bar whose range reaches the price, skipping whole blocks that do not
            if (otype == LIMIT) == buy:
                i = _first_low_at_most(i, end, limit if otype == LIMIT else stop, bar_low, block_low, block2_low)
            else:
                i = _first_high_at_least(i, end, limit if otype == LIMIT else stop, bar_high, block_high, block2_high)
            if i < 0:
                break
        if triggered or otype == MARKET:  # a stop the market reached is a market order from then on
            reference = bar_open[i]
        elif otype == LIMIT:
            reference = min(bar_open[i], limit) if buy else max(bar_open[i], limit)
        else:
            reference = max(bar_open[i], stop) if buy else min(bar_open[i], stop)
        triggered = otype == STOP
        qty = min(remaining, np.floor(participation * bar_volume[i]) if not math.isnan(participation) else math.inf)
        if qty > 0:
            price = reference
            if otype != LIMIT:
                price = _fill_price(p, anchor_adv, anchor_bps, buy, price, qty, bar_adv[i], bar_sigma[i])
            if p[P_ROUND_TICK] != 0.0:
                price = _tick_round(price, buy)
                if otype == LIMIT:  # rounding must not push a limit fill through its limit
                    price = min(price, limit) if buy else max(price, limit)
            f_order.append(o)
            f_ts.append(bar_ts[i])
            f_qty.append(qty)
            f_price.append(price)
            f_ref.append(reference)
            remaining -= qty
            if remaining <= 1e-9:
                break
        i += 1
    until = bar_ts[end - 1] if tif == DAY else bar_ts[hi - 1]
    total = 0.0
    for f in range(start_fills, len(f_order)):
        total += f_qty[f]
    if len(f_order) > start_fills and total >= orders[3][o] - 1e-9:
        until = f_ts[len(f_order) - 1]  # complete at its last fill
    orders[9][o] = True
    book[3].append(o)
    book[2][s] += 1
    for f in range(start_fills, len(f_order)):
        heapq.heappush(pending, (f_ts[f], np.int64(seq), np.int64(0), np.int64(f)))
        seq += 1
    heapq.heappush(pending, (until, np.int64(seq), np.int64(1), np.int64(o)))
    seq += 1
    return until, seq
