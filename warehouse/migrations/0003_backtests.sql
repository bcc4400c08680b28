-- Backtests, walk-forward folds and perturbation runs: what was run, on what, with which
-- code, and what came out. One row per run in backtest_runs; its fills, round trips and
-- equity curve in the tables below, keyed by run_id.
CREATE TABLE backtest_runs (
    run_id          VARCHAR     NOT NULL PRIMARY KEY,
    kind            VARCHAR     NOT NULL,     -- backtest | walk_forward | walk_forward_fold | perturbation
    parent_run_id   VARCHAR,                  -- the walk-forward or perturbation a fold belongs to
    strategy        VARCHAR     NOT NULL,
    params          JSON        NOT NULL,
    universe        VARCHAR     NOT NULL,
    timeframe       VARCHAR     NOT NULL,
    window_start    TIMESTAMPTZ,
    window_end      TIMESTAMPTZ,
    fold            INTEGER,
    config          JSON        NOT NULL,     -- cash, costs, sizing, risk rules
    assumptions     JSON        NOT NULL,     -- what the report states next to the results
    data_snapshot   JSON        NOT NULL,     -- row counts and newest ingest time of the input
    code_version    VARCHAR     NOT NULL,
    metrics         JSON        NOT NULL,
    report_path     VARCHAR,
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE backtest_fills (
    run_id      VARCHAR     NOT NULL,
    seq         INTEGER     NOT NULL,
    order_id    VARCHAR     NOT NULL,
    symbol      VARCHAR     NOT NULL,
    side        VARCHAR     NOT NULL,
    ts          TIMESTAMPTZ NOT NULL,
    qty         DOUBLE      NOT NULL,
    price       DOUBLE      NOT NULL,
    commission  DOUBLE      NOT NULL,
    fees        DOUBLE      NOT NULL,
    slippage    DOUBLE      NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE backtest_trades (
    run_id       VARCHAR     NOT NULL,
    seq          INTEGER     NOT NULL,
    symbol       VARCHAR     NOT NULL,
    entry_ts     TIMESTAMPTZ NOT NULL,
    exit_ts      TIMESTAMPTZ NOT NULL,
    qty          DOUBLE      NOT NULL,
    entry_price  DOUBLE      NOT NULL,
    exit_price   DOUBLE      NOT NULL,
    pnl          DOUBLE      NOT NULL,
    return_pct   DOUBLE      NOT NULL,
    costs        DOUBLE      NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE backtest_equity (
    run_id     VARCHAR     NOT NULL,
    ts         TIMESTAMPTZ NOT NULL,
    cash       DOUBLE      NOT NULL,
    positions  DOUBLE      NOT NULL,
    equity     DOUBLE      NOT NULL,
    exposure   DOUBLE      NOT NULL,
    PRIMARY KEY (run_id, ts)
);
