-- Corporate actions, point-in-time universes and data-quality findings: what a backtest needs
-- to price across splits, pick the names a date really had, and say what it could not explain.

-- One action as a source reported it. `knowable_at` is when it was announced (or first seen);
-- an adjusted backtest applies it only from then, and never before its ex-date.
CREATE TABLE corporate_actions (
    source        VARCHAR     NOT NULL,
    symbol        VARCHAR     NOT NULL,
    kind          VARCHAR     NOT NULL,           -- split | reverse_split | cash_dividend | special_distribution | spin_off | symbol_change | delisting
    ex_date       DATE        NOT NULL,           -- first New York session the price reflects it
    ratio         DOUBLE,                         -- splits: new shares per old share (2 for 2-for-1, 0.1 for 1-for-10)
    amount        DOUBLE,                         -- cash per share (dividends, special distributions)
    price_factor  DOUBLE,                         -- share of its value a share keeps across the ex-date, when no cash amount says it (spin-offs)
    new_symbol    VARCHAR,                        -- symbol changes: the new ticker; spin-offs: the company spun off
    knowable_at   TIMESTAMPTZ NOT NULL,
    fetched_at    TIMESTAMPTZ NOT NULL,
    payload       VARCHAR     NOT NULL,           -- the record as the source sent it (JSON)
    payload_hash  VARCHAR     NOT NULL,
    PRIMARY KEY (source, symbol, kind, ex_date)
);

-- A universe (an index, a screen) and what it is: its survivorship is data, not prose.
CREATE TABLE universes (
    universe      VARCHAR     NOT NULL PRIMARY KEY,
    description   VARCHAR     NOT NULL,
    survivorship  VARCHAR     NOT NULL,           -- point_in_time | survivorship_biased
    source        VARCHAR     NOT NULL,
    recorded_at   TIMESTAMPTZ NOT NULL
);

-- Membership intervals: `symbol` belonged to `universe` on New York days from_date .. to_date
-- (to_date null: still a member as far as the source knows).
CREATE TABLE universe_members (
    universe      VARCHAR     NOT NULL,
    symbol        VARCHAR     NOT NULL,
    from_date     DATE        NOT NULL,
    to_date       DATE,
    knowable_at   TIMESTAMPTZ NOT NULL,           -- when the membership was known
    source        VARCHAR     NOT NULL,
    PRIMARY KEY (universe, symbol, from_date)
);

-- What a data check found and could not explain (a price jump no recorded action accounts
-- for...). Findings are shown, never acted on: the bars stay as the source sent them.
CREATE TABLE data_findings (
    check_name    VARCHAR     NOT NULL,           -- price_jump ...
    symbol        VARCHAR     NOT NULL,
    timeframe     VARCHAR     NOT NULL,
    ts            TIMESTAMPTZ NOT NULL,           -- the bar the finding is about
    ratio         DOUBLE,                         -- price_jump: open / previous close
    detail        VARCHAR     NOT NULL,
    found_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (check_name, symbol, timeframe, ts)
);
