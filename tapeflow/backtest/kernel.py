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
from numba import njit

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


# the order book: one row an order, in the order they were placed
(O_KIND, O_SYM, O_BUY, O_QTY, O_TYPE, O_LIMIT, O_STOP, O_PLACED, O_PARENT, O_WORKING, O_CANCELLED, O_FILLED_QTY,
 O_FILLED_VALUE, O_CHARGED, O_ANY, O_DONE, O_COMMISSION, O_FEES, N_O) = range(19)
# fills as their order computed them when placed: one row a fill
F_ORDER, F_TS, F_QTY, F_PRICE, F_REF, N_F = range(6)
# counters
C_ORDERS, C_FILLS, C_WORKING, C_HELD, C_APPLIED, N_C = range(6)


class Full(Exception):
    """The preallocated book is full: `compiled.walk` runs the loop again with room for more."""


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
def _from(values, lo, hi, x):
    """The first index in [lo, hi) of sorted `values` at or after `x` (hi: none)."""
    return lo + np.searchsorted(values[lo:hi], x, side="left")


@njit(cache=True)
def _after(values, lo, hi, x):
    """The first index in [lo, hi) of sorted `values` after `x` (hi: none)."""
    return lo + np.searchsorted(values[lo:hi], x, side="right")


@njit(cache=True)
def _last_close(bars, book, s, at):
    """Close of symbol `s`'s last bar ended by `at`, or NaN. The loop asks at instants that only
    move forward, so each symbol keeps its place and steps on from it (a search otherwise)."""
    end, close, sym_lo, sym_hi = bars[1], bars[5], bars[14], bars[15]
    place = book[6]
    lo, hi = sym_lo[s], sym_hi[s]
    j = place[s]
    if j >= lo and end[j] > at:
        j = _after(end, lo, hi, at) - 1
    else:
        while j + 1 < hi and end[j + 1] <= at:
            j += 1
    place[s] = j
    return close[j] if j >= lo else math.nan


@njit(cache=True)
def _or_zero(x):
    return 0.0 if math.isnan(x) else x


@njit(cache=True)
def run(bars, sig_sym, sig_at, sig_enter, sig_qty, sig_type, sig_tif, sig_limit, sig_stop, sig_session,
        sig_session_start, close_exit, close_reopen, costs, order_room, fill_room):
    """The event loop over `bars` (the columns `compiled.walk` builds) and the decisions, with
    room for `order_room` orders and `fill_room` fills (else Full). Returns per decision its
    outcome, order and two detail figures; the orders; the fills; the applied fills' rows."""
    p = costs[0]
    n_sym = len(bars[14])
    n_sig = len(sig_at)
    cash = p[P_CASH]
    orders = np.zeros((order_room, N_O))
    fills = np.zeros((fill_room, N_F))
    count = np.zeros(N_C, dtype=np.int64)
    position = np.zeros(n_sym)
    open_count = np.zeros(n_sym, dtype=np.int64)  # orders working per symbol
    working = np.empty(order_room, dtype=np.int64)  # working orders, in the order they were placed
    held_order = np.empty(n_sym, dtype=np.int64)  # symbols in the order they first got a fill (the book's dict order)
    applied = np.empty(fill_room, dtype=np.int64)
    place = bars[14] - 1  # each symbol's last bar ended by the latest instant asked (none yet)
    book = (count, position, open_count, working, held_order, applied, place)
    # heap of (instant, sequence, what: 0 a fill / 1 its order stops working, index)
    pending = [(np.int64(0), np.int64(0), np.int64(0), np.int64(0))]
    pending.pop()
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
        i = _after(close_exit, 0, len(close_exit), at) - 1  # the last time exit by now, until its reopen
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
            order = _new_order(orders, count, EXIT, s, False, held, sig_type[k], sig_limit[k], sig_stop[k], at, -1)
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
        order = _new_order(orders, count, ENTER, s, True, qty, sig_type[k], sig_limit[k], sig_stop[k], at, -1)
        out_code[k], out_order[k] = PLACED_ORDER, order
        first_fill = count[C_FILLS]
        until, seq = _place(order, sig_tif[k], bars, orders, fills, book, pending, seq, costs)
        if count[C_FILLS] > first_fill and not math.isnan(p[P_STOP_LOSS]):
            seq = _protect(order, first_fill, until + 1, s, bars, orders, fills, book, pending, seq, costs)

    cash = _apply_until(0, False, pending, orders, fills, book, cash, p)
    return (out_code, out_order, out_a, out_b, orders[:count[C_ORDERS]], fills[:count[C_FILLS]],
            applied[:count[C_APPLIED]])


@njit(cache=True)
def _new_order(orders, count, kind, s, buy, qty, otype, limit, stop, placed, parent):
    o = count[C_ORDERS]
    if o == len(orders):
        raise Full()
    count[C_ORDERS] += 1
    row = orders[o]
    row[O_KIND], row[O_SYM], row[O_BUY], row[O_QTY], row[O_TYPE] = kind, s, buy, qty, otype
    row[O_LIMIT], row[O_STOP], row[O_PLACED], row[O_PARENT] = limit, stop, placed, parent
    return o


@njit(cache=True)
def _entry_size(bars, book, s, at, asked, equity, buying_power, p):
    """`ExecutionPolicy.entry` at the last close: (-1, shares, 0) or (the refusing outcome, 0, its figure)."""
    position, open_count = book[1], book[2]
    price = _last_close(bars, book, s, at)
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
    last = book[0][C_FILLS]
    total_qty = 0.0
    for f in range(first_fill, last):
        total_qty += fills[f, F_QTY]
    total_value = 0.0
    for f in range(first_fill, last):
        total_value += fills[f, F_QTY] * fills[f, F_PRICE]
    stop_price = _tick_round(total_value / total_qty * (1 - p[P_STOP_LOSS]), False)
    stop = _new_order(orders, book[0], STOP_LOSS, s, False, total_qty, STOP, math.nan, stop_price, placed, entry)
    _, seq = _place(stop, GTC, bars, orders, fills, book, pending, seq, costs)
    return seq


@njit(cache=True)
def _equity_at(bars, book, at, cash):
    """`engine._equity_at`: positions in the order the book first held them."""
    count, position, held_order = book[0], book[1], book[4]
    value = cash
    for h in range(count[C_HELD]):
        s = held_order[h]
        if position[s] != 0:
            value += position[s] * _or_zero(_last_close(bars, book, s, at))
    return value


@njit(cache=True)
def _buying_power(bars, orders, book, at, equity, multiple):
    """`engine._buying_power`: buys still working count at their limit, stop or the last close."""
    count, position, working, held_order = book[0], book[1], book[3], book[4]
    held = 0.0
    for h in range(count[C_HELD]):
        s = held_order[h]
        if position[s] != 0:
            held += abs(position[s]) * _or_zero(_last_close(bars, book, s, at))
    waiting = 0.0
    for w in range(count[C_WORKING]):
        row = orders[working[w]]
        if row[O_BUY] != 0:
            if not math.isnan(row[O_LIMIT]) and row[O_LIMIT] != 0:
                price = row[O_LIMIT]
            elif not math.isnan(row[O_STOP]) and row[O_STOP] != 0:
                price = row[O_STOP]
            else:
                price = _or_zero(_last_close(bars, book, np.int64(row[O_SYM]), at))
            waiting += (row[O_QTY] - row[O_FILLED_QTY]) * price
    return max(0.0, equity * multiple - held - waiting)


@njit(cache=True)
def _settle(row, p):
    """An order stopped working: its commission and fees on what it filled."""
    if row[O_DONE] != 0 or row[O_ANY] == 0:
        return
    row[O_DONE] = 1
    row[O_COMMISSION] = _commission(p, row[O_FILLED_QTY], row[O_FILLED_VALUE])
    row[O_FEES] = _fees(p, row[O_BUY] != 0, row[O_FILLED_QTY], row[O_FILLED_VALUE])


@njit(cache=True)
def _stop_working(o, orders, book):
    count, open_count, working = book[0], book[2], book[3]
    orders[o, O_WORKING] = 0
    open_count[np.int64(orders[o, O_SYM])] -= 1
    n = count[C_WORKING]
    for w in range(n):
        if working[w] == o:
            working[w:n - 1] = working[w + 1:n]
            count[C_WORKING] = n - 1
            return


@njit(cache=True)
def _cancel_symbol(s, orders, book, p):
    """Cancel every order working in symbol `s`; each pays for what it filled."""
    count, working = book[0], book[3]
    w = 0
    while w < count[C_WORKING]:
        o = working[w]
        if orders[o, O_SYM] == s:
            _stop_working(o, orders, book)  # the next one moves into place w
            orders[o, O_CANCELLED] = 1
            _settle(orders[o], p)
        else:
            w += 1


@njit(cache=True)
def _apply_until(at, bounded, pending, orders, fills, book, cash, p):
    """`engine._apply_until`: the fills and ends of orders strictly before `at` (all: not bounded)."""
    count, position, held_order, applied = book[0], book[1], book[4], book[5]
    while len(pending) > 0 and (not bounded or pending[0][0] < at):
        _, _, what, index = heapq.heappop(pending)
        o = index if what == 1 else np.int64(fills[index, F_ORDER])
        row = orders[o]
        if row[O_CANCELLED] != 0:
            continue
        if what == 1:  # it has stopped working: filled, or its time is up
            _settle(row, p)
            if row[O_WORKING] != 0:
                _stop_working(o, orders, book)
            continue
        s, buy = np.int64(row[O_SYM]), row[O_BUY] != 0
        qty, price = fills[index, F_QTY], fills[index, F_PRICE]
        if row[O_ANY] == 0 and not _in(held_order[:count[C_HELD]], s):
            held_order[count[C_HELD]] = s
            count[C_HELD] += 1
        sign = 1.0 if buy else -1.0
        position[s] = position[s] + sign * qty
        cash -= sign * qty * price
        applied[count[C_APPLIED]] = index
        count[C_APPLIED] += 1
        row[O_ANY] = 1
        row[O_FILLED_QTY] = row[O_FILLED_QTY] + qty
        row[O_FILLED_VALUE] = row[O_FILLED_VALUE] + qty * price
        # commission is paid as the order fills: each fill pays what the order's total grew by
        total = (_commission(p, row[O_FILLED_QTY], row[O_FILLED_VALUE])
                 + _fees(p, buy, row[O_FILLED_QTY], row[O_FILLED_VALUE]))
        cash -= total - row[O_CHARGED]
        row[O_CHARGED] = total
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
    position, open_count = book[1], book[2]
    for s in range(len(position)):
        if open_count[s] > 0:
            _cancel_symbol(s, orders, book, costs[0])
    for s in range(len(position)):
        if position[s] > 0:
            order = _new_order(orders, book[0], FLAT, s, False, position[s], MARKET, math.nan, math.nan, at, -1)
            _, seq = _place(order, DAY, bars, orders, fills, book, pending, seq, costs)
    return seq


@njit(cache=True)
def _place(o, tif, bars, orders, fills, book, pending, seq, costs):
    """`engine._place` with `fills.fill_order` and `working_until`: the order's fills go on the
    heap, then the instant it stops working. Returns (that instant or -1, the next sequence)."""
    (bar_ts, _, bar_open, bar_high, bar_low, _, bar_volume, bar_session, bar_adv, bar_sigma, block_low, block2_low,
     block_high, block2_high, sym_lo, sym_hi) = bars
    p, anchor_adv, anchor_bps = costs
    count, open_count, working = book[0], book[2], book[3]
    row = orders[o]
    s = np.int64(row[O_SYM])
    lo, hi = sym_lo[s], sym_hi[s]
    first = _from(bar_ts, lo, hi, np.int64(row[O_PLACED]))
    if first >= hi:
        return np.int64(-1), seq  # no bar left: it never works
    end = hi
    if tif == DAY:  # to its session's last bar
        end = _after(bar_session, first, hi, bar_session[first])
    buy, otype, limit, stop, remaining = row[O_BUY] != 0, np.int64(row[O_TYPE]), row[O_LIMIT], row[O_STOP], row[O_QTY]
    participation = p[P_PARTICIPATION]
    triggered = False
    start_fills = count[C_FILLS]
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
            f = count[C_FILLS]
            if f == len(fills):
                raise Full()
            count[C_FILLS] += 1
            fills[f, F_ORDER], fills[f, F_TS], fills[f, F_QTY], fills[f, F_PRICE], fills[f, F_REF] = (
                o, bar_ts[i], qty, price, reference)
            remaining -= qty
            if remaining <= 1e-9:
                break
        i += 1
    until = bar_ts[end - 1] if tif == DAY else bar_ts[hi - 1]
    total = 0.0
    for f in range(start_fills, count[C_FILLS]):
        total += fills[f, F_QTY]
    if count[C_FILLS] > start_fills and total >= row[O_QTY] - 1e-9:
        until = np.int64(fills[count[C_FILLS] - 1, F_TS])  # complete at its last fill
    row[O_WORKING] = 1
    working[count[C_WORKING]] = o
    count[C_WORKING] += 1
    open_count[s] += 1
    for f in range(start_fills, count[C_FILLS]):
        heapq.heappush(pending, (np.int64(fills[f, F_TS]), np.int64(seq), np.int64(0), np.int64(f)))
        seq += 1
    heapq.heappush(pending, (until, np.int64(seq), np.int64(1), np.int64(o)))
    seq += 1
    return until, seq
