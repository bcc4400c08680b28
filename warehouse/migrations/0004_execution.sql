-- Execution: what tapeflow asked brokers to do and what they did, for every broker and mode
-- in the same tables, keyed so that a replay, a retry or a restart never duplicates a row.
-- The broker is the source of truth; `tapeflow.brokers.reconcile` brings these tables in
-- line with it and records what it found in `reconciliations`.
CREATE TABLE orders (
    client_order_id   VARCHAR     NOT NULL PRIMARY KEY,  -- deterministic: strategy, decision, symbol, leg
    mode              VARCHAR     NOT NULL,              -- backtest | paper | live
    broker            VARCHAR     NOT NULL,              -- sim | alpaca | ibkr
    strategy          VARCHAR     NOT NULL,
    symbol            VARCHAR     NOT NULL,
    side              VARCHAR     NOT NULL,
    qty               DOUBLE      NOT NULL,
    order_type        VARCHAR     NOT NULL,
    time_in_force     VARCHAR     NOT NULL,
    limit_price       DOUBLE,
    stop_price        DOUBLE,
    take_profit_price DOUBLE,
    stop_loss_price   DOUBLE,
    status            VARCHAR     NOT NULL,              -- pending (recorded, not yet acknowledged) | new | partially_filled | filled | canceled | rejected | expired | replaced
    filled_qty        DOUBLE      NOT NULL DEFAULT 0,
    avg_fill_price    DOUBLE,
    broker_order_id   VARCHAR,
    reason            VARCHAR     NOT NULL DEFAULT '',   -- why it was placed, or why it was rejected
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE fills (
    broker          VARCHAR     NOT NULL,
    fill_id         VARCHAR     NOT NULL,               -- the broker's execution id
    mode            VARCHAR     NOT NULL,
    client_order_id VARCHAR     NOT NULL,
    symbol          VARCHAR     NOT NULL,
    side            VARCHAR     NOT NULL,
    ts              TIMESTAMPTZ NOT NULL,
    qty             DOUBLE      NOT NULL,
    price           DOUBLE      NOT NULL,
    commission      DOUBLE      NOT NULL,
    adopted         BOOLEAN     NOT NULL,               -- found by reconciliation, not seen as it happened
    recorded_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (broker, fill_id)
);

CREATE TABLE account_snapshots (
    broker       VARCHAR     NOT NULL,
    mode         VARCHAR     NOT NULL,
    ts           TIMESTAMPTZ NOT NULL,
    equity       DOUBLE      NOT NULL,
    cash         DOUBLE      NOT NULL,
    buying_power DOUBLE      NOT NULL,
    last_equity  DOUBLE,
    PRIMARY KEY (broker, mode, ts)
);

CREATE TABLE position_snapshots (
    broker    VARCHAR     NOT NULL,
    mode      VARCHAR     NOT NULL,
    ts        TIMESTAMPTZ NOT NULL,
    symbol    VARCHAR     NOT NULL,
    qty       DOUBLE      NOT NULL,
    avg_price DOUBLE      NOT NULL,
    PRIMARY KEY (broker, mode, ts, symbol)
);

CREATE TABLE reconciliations (
    broker        VARCHAR     NOT NULL,
    mode          VARCHAR     NOT NULL,
    ts            TIMESTAMPTZ NOT NULL,
    clean         BOOLEAN     NOT NULL,                 -- false: new entries are refused until a clean one
    differences   JSON        NOT NULL,
    adopted_fills INTEGER     NOT NULL,
    cash          DOUBLE,                               -- the broker's cash as this reconciliation read it
    PRIMARY KEY (broker, mode, ts)
);

-- The simulated broker's venue: its own book, apart from the ledger above, so that it can
-- fill orders while the trading process is down and reconciliation has something to find.
CREATE TABLE sim_orders (
    client_order_id   VARCHAR     NOT NULL PRIMARY KEY,
    broker_order_id   VARCHAR     NOT NULL,
    symbol            VARCHAR     NOT NULL,
    side              VARCHAR     NOT NULL,
    qty               DOUBLE      NOT NULL,
    order_type        VARCHAR     NOT NULL,
    time_in_force     VARCHAR     NOT NULL,
    limit_price       DOUBLE,
    stop_price        DOUBLE,
    take_profit_price DOUBLE,
    stop_loss_price   DOUBLE,
    parent            VARCHAR,                          -- a bracket leg's entry order
    session           DATE,                             -- a DAY order's session, set by its first bar
    status            VARCHAR     NOT NULL,
    filled_qty        DOUBLE      NOT NULL,
    filled_value      DOUBLE      NOT NULL,
    charged           DOUBLE      NOT NULL,             -- commission and fees charged so far
    reason            VARCHAR     NOT NULL,
    submitted_at      TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE sim_fills (
    fill_id         VARCHAR     NOT NULL PRIMARY KEY,
    client_order_id VARCHAR     NOT NULL,
    symbol          VARCHAR     NOT NULL,
    side            VARCHAR     NOT NULL,
    ts              TIMESTAMPTZ NOT NULL,
    qty             DOUBLE      NOT NULL,
    price           DOUBLE      NOT NULL,
    commission      DOUBLE      NOT NULL
);

CREATE TABLE sim_account (
    account        VARCHAR     NOT NULL PRIMARY KEY,
    start_cash     DOUBLE      NOT NULL,
    cash           DOUBLE      NOT NULL,
    session        DATE,                                -- the session last_equity belongs before
    last_equity    DOUBLE,
    updated_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE sim_prices (
    symbol VARCHAR     NOT NULL PRIMARY KEY,
    price  DOUBLE      NOT NULL,
    ts     TIMESTAMPTZ NOT NULL                          -- the end of the bar it came from
);
