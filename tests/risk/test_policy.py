"""The execution policy's rules on their own: sizing within the cap and buying power, the
order of the gates, the breaker that holds for the day, stops on the tick, the time exit of
intraday strategies only, and settings refused when they make no sense."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from tapeflow.model import Outcome, Timeframe
from tapeflow.risk.policy import DEFAULT_POLICY, RULES_OFF, BookView, ExecutionPolicy, Sizing

FLAT = BookView(equity=100_000.0, buying_power=100_000.0, held={}, working=set())


def test_an_entry_is_sized_then_capped_then_cut_to_buying_power():
    policy = ExecutionPolicy(sizing=Sizing(fraction=0.5))
    assert policy.entry("A", asked=None, price=10.0, book=FLAT) == 2_500.0  # 50% of equity, then the 25% cap
    assert policy.entry("A", asked=100.0, price=300.0, book=FLAT) == 83.0  # the strategy's 100, capped at 25% of equity
    poor = BookView(equity=100_000.0, buying_power=1_005.0, held={}, working=set())
    assert policy.entry("A", asked=None, price=10.0, book=poor) == 100.0  # the sizing budget is the buying power
    assert policy.entry("A", asked=500.0, price=10.0, book=poor) == 100.0  # and a fixed quantity is cut to it
    broke = BookView(equity=100_000.0, buying_power=5.0, held={}, working=set())
    assert policy.entry("A", asked=10.0, price=10.0, book=broke) == Outcome.NO_BUYING_POWER.with_detail("5.00")
    assert RULES_OFF.entry("A", asked=1e6, price=10.0, book=FLAT) == 10_000.0  # no cap, but the buying power
    unchecked = BookView(equity=100_000.0, buying_power=math.inf, held={}, working=set())
    assert RULES_OFF.entry("A", asked=1e6, price=10.0, book=unchecked) == 1e6  # neither: the benchmark's rules


def test_without_a_price_a_sized_entry_is_zero_and_a_fixed_one_waits_for_a_price():
    assert DEFAULT_POLICY.entry("A", asked=None, price=None, book=FLAT) == Outcome.SIZED_TO_ZERO
    assert DEFAULT_POLICY.entry("A", asked=100.0, price=None, book=FLAT) == Outcome.NO_PRICE
    unchecked = BookView(equity=100_000.0, buying_power=math.inf, held={}, working=set())
    assert RULES_OFF.entry("A", asked=100.0, price=None, book=unchecked) == 100.0  # nothing needs the price


def test_slots_count_the_strategys_own_positions_and_working_orders():
    policy = ExecutionPolicy(sizing=Sizing(max_positions=2))
    full = BookView(equity=100_000.0, buying_power=100_000.0, held={"A": 10.0, "B": 0.0}, working={"C"})
    assert full.slots == 2 and full.busy("A") and full.busy("C") and not full.busy("B")
    assert policy.entry("D", asked=None, price=10.0, book=full) == Outcome.SIZED_TO_ZERO
    assert policy.entry("D", asked=5.0, price=10.0, book=full) == 5.0  # a fixed quantity takes no slot from sizing


def test_the_gates_run_closing_then_stopped_then_busy_then_the_breaker():
    breaker = DEFAULT_POLICY.breaker()
    breaker.observe(1, 100_000.0)
    busy_and_down = BookView(equity=97_000.0, buying_power=0.0, held={"A": 1.0}, working=set())
    gate = DEFAULT_POLICY.gate
    assert gate("A", closing=True, stopped="kill", book=busy_and_down, breaker=breaker, session=1) == Outcome.CLOSING
    assert gate("A", closing=False, stopped="kill", book=busy_and_down, breaker=breaker, session=1) == \
        Outcome.ENTRIES_STOPPED.with_detail("kill")
    assert gate("A", closing=False, stopped=None, book=busy_and_down, breaker=breaker, session=1) == Outcome.BUSY
    assert gate("B", closing=False, stopped=None, book=busy_and_down, breaker=breaker, session=1).startswith(
        Outcome.DAILY_LOSS)


def test_the_breaker_holds_for_the_rest_of_the_day_once_tripped_and_resets_the_next():
    breaker = ExecutionPolicy(daily_loss_limit_pct=0.02).breaker()
    breaker.observe(1, 100_000.0)
    breaker.observe(1, 50_000.0)  # only the day's first equity is its reference
    assert not breaker.tripped(1, 98_500.0)
    assert breaker.tripped(1, 97_900.0)
    assert breaker.tripped(1, 101_000.0)  # recovered, still locked for the day
    assert "97,900.00 is -2.10%" in breaker.describe(1, 101_000.0)
    breaker.observe(2, 101_000.0)
    assert not breaker.tripped(2, 101_000.0)
    assert not RULES_OFF.breaker().tripped(1, 1.0)


def test_stops_sit_on_the_tick_against_the_trader():
    policy = ExecutionPolicy(stop_loss_pct=0.005)
    assert policy.stop_price(132.90) == 132.23  # 132.2355 rounded down, never up
    assert policy.stop_price(0.5) == 0.4975  # sub-dollar prices tick at $0.0001
    assert DEFAULT_POLICY.stop_price(132.90) is None


def test_only_intraday_strategies_are_made_flat_before_the_close():
    close = datetime(2011, 3, 3, 21, tzinfo=UTC)
    assert DEFAULT_POLICY.exit_at(close, Timeframe.MINUTE) == close - timedelta(minutes=5)
    assert DEFAULT_POLICY.exit_at(close, Timeframe.DAY) is None
    assert RULES_OFF.exit_at(close, Timeframe.MINUTE) is None
    assert RULES_OFF.passive(Timeframe.MINUTE) and not DEFAULT_POLICY.passive(Timeframe.DAY)


@pytest.mark.parametrize(("change", "message"), [
    ({"max_position_pct": 0.0}, "max_position_pct"), ({"stop_loss_pct": 1.0}, "stop_loss_pct"),
    ({"daily_loss_limit_pct": 2.0}, "daily loss limit"), ({"exit_before_close": timedelta(0)}, "exit_before_close"),
])
def test_rules_that_make_no_sense_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        ExecutionPolicy(**change)
