"""Example queries the demo prints; each is plain SQL a user can paste into `tapeflow sql`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    title: str
    sql: str


WAREHOUSE_TOTALS = Example(
    "What the warehouse holds",
    """SELECT timeframe, count(*) AS bars, count(DISTINCT symbol) AS symbols,
       min(ts) AS first_bar, max(end_ts) AS last_bar_end
FROM bars GROUP BY timeframe ORDER BY timeframe""",
)

TOP_MOVERS = Example(
    "Top movers of the last daily session (close vs previous close)",
    """WITH moves AS (
  SELECT symbol, ts, close,
         lag(close) OVER (PARTITION BY symbol ORDER BY ts) AS prev_close
  FROM bars WHERE timeframe = '1d')
SELECT symbol, timezone('America/New_York', ts)::DATE AS session, prev_close, close,
       round(100 * (close / prev_close - 1), 2) AS change_pct
FROM moves WHERE ts = (SELECT max(ts) FROM bars WHERE timeframe = '1d')
ORDER BY abs(close / prev_close - 1) DESC LIMIT 5""",
)

SPY_SESSIONS = Example(
    "SPY minute bars per New York day: extended hours vs the regular session",
    """SELECT timezone('America/New_York', ts)::DATE AS day,
       count(*) AS bars,
       count(*) FILTER (WHERE timezone('America/New_York', ts)::TIME BETWEEN '09:30' AND '15:59') AS regular,
       strftime(min(timezone('America/New_York', ts)), '%H:%M') AS first_bar_ny,
       sum(volume)::BIGINT AS volume
FROM bars WHERE symbol = 'SPY' AND timeframe = '1m'
GROUP BY day ORDER BY day LIMIT 5""",
)

QUARANTINE = Example(
    "Rows refused, by reason (raw payloads kept in the quarantine table)",
    """SELECT source, kind, reason, count(*) AS rows, any_value(payload) AS example
FROM quarantine GROUP BY ALL ORDER BY rows DESC""",
)

SCANNER_DAY = Example(
    "The scanner's pre-market watchlist for 2010-05-07, the morning after the flash crash",
    """SELECT rank, ticker, score, payload->>'gap_pct' AS gap_pct, payload->>'rel_volume' AS rel_volume,
       payload->>'range_expansion' AS range_x, payload->>'close' AS close
FROM watchlist_snapshots
WHERE source = 'scanner' AND timezone('America/New_York', as_of)::DATE = DATE '2010-05-07'
ORDER BY rank LIMIT 10""",
)

ACTIONS_AND_FINDINGS = Example(
    "Corporate actions backtests price across, and the price jumps none explains",
    """SELECT symbol, kind, ex_date, coalesce(ratio, price_factor) AS ratio_or_factor, 'action' AS what
FROM corporate_actions
UNION ALL
SELECT symbol, check_name, timezone('America/New_York', ts)::DATE, round(ratio, 3), detail
FROM data_findings ORDER BY ex_date""",
)

DEMO_EXAMPLES = (WAREHOUSE_TOTALS, TOP_MOVERS, SPY_SESSIONS, SCANNER_DAY, ACTIONS_AND_FINDINGS, QUARANTINE)
