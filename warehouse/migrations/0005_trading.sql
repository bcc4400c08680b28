-- Trading sessions, their decisions and risk state, monitoring, and the staged release.

-- One row per strategy session (a strategy, its parameters, an account, a trading day).
CREATE TABLE trading_sessions (
    session_id    VARCHAR     NOT NULL PRIMARY KEY,      -- strategy:params_hash:broker:mode:date
    strategy      VARCHAR     NOT NULL,
    params        JSON        NOT NULL,
    params_hash   VARCHAR     NOT NULL,
    broker        VARCHAR     NOT NULL,
    mode          VARCHAR     NOT NULL,                  -- paper | live
    session_date  DATE        NOT NULL,                  -- the New York trading day
    status        VARCHAR     NOT NULL,                  -- running | finished | killed | failed
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    reconciled    BOOLEAN     NOT NULL DEFAULT FALSE,    -- the end-of-day reconciliation came out clean
    summary       JSON                                   -- orders, fills, P&L, alerts of the day
);

-- Every decision, recorded before its order is sent (crash safety: a restart finds it).
CREATE TABLE session_decisions (
    session_id      VARCHAR     NOT NULL,
    client_order_id VARCHAR     NOT NULL,
    decided_at      TIMESTAMPTZ NOT NULL,                -- the decision time (a bar end)
    symbol          VARCHAR     NOT NULL,
    action          VARCHAR     NOT NULL,                -- enter | exit
    reason          VARCHAR     NOT NULL,
    qty             DOUBLE,
    order_type      VARCHAR     NOT NULL,
    time_in_force   VARCHAR     NOT NULL,
    limit_price     DOUBLE,
    stop_price      DOUBLE,
    outcome         VARCHAR     NOT NULL,                -- decided | sent | rejected | skipped: why
    recorded_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (session_id, client_order_id)
);

-- Risk state that outlives a process: the daily-loss lock and the kill switch.
CREATE TABLE risk_locks (
    scope        VARCHAR     NOT NULL,                   -- strategy name, or 'all'
    session_date DATE        NOT NULL,
    kind         VARCHAR     NOT NULL,                   -- daily_loss
    reason       VARCHAR     NOT NULL,
    locked_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, session_date, kind)
);

CREATE TABLE kill_switch (
    scope      VARCHAR     NOT NULL PRIMARY KEY,         -- strategy name, or 'all'
    engaged    BOOLEAN     NOT NULL,
    reason     VARCHAR     NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL,
    changed_by VARCHAR     NOT NULL                      -- cli | prefect-variable | session
);

CREATE TABLE heartbeats (
    component VARCHAR     NOT NULL,                      -- e.g. trade_session:watchlist_momentum
    ts        TIMESTAMPTZ NOT NULL,
    detail    JSON        NOT NULL,
    PRIMARY KEY (component, ts)
);

CREATE TABLE alerts (
    alert_key  VARCHAR     NOT NULL,                     -- what makes two alerts the same (dedup)
    ts         TIMESTAMPTZ NOT NULL,
    component  VARCHAR     NOT NULL,
    kind       VARCHAR     NOT NULL,                     -- missing_heartbeat | stale_data | broker_disconnected | position_drift | order_rejected | breaker_tripped | flow_failed | kill_switch ...
    severity   VARCHAR     NOT NULL,
    title      VARCHAR     NOT NULL,
    message    VARCHAR     NOT NULL,
    delivered  VARCHAR     NOT NULL,                     -- the channels it went to, or why not
    PRIMARY KEY (alert_key, ts)
);

-- The staged release: a strategy with a parameter set may trade paper, then live.
CREATE TABLE promotions (
    strategy      VARCHAR     NOT NULL,
    params_hash   VARCHAR     NOT NULL,
    params        JSON        NOT NULL,
    stage         VARCHAR     NOT NULL,                  -- paper | live
    promoted_at   TIMESTAMPTZ NOT NULL,
    paper_sessions INTEGER    NOT NULL,                  -- reconciled paper sessions at promotion
    override_reason VARCHAR,                             -- why live came before the minimum
    PRIMARY KEY (strategy, params_hash, stage)
);

-- Paper versus backtest (tapeflow.live.paper_gap): one paper session replayed through the
-- backtest engine; gap = paper P&L - backtest P&L, split by cause (they sum to the gap).
CREATE TABLE paper_gaps (
    session_id    VARCHAR     NOT NULL PRIMARY KEY,      -- a paper trading_sessions row
    strategy      VARCHAR     NOT NULL,
    params_hash   VARCHAR     NOT NULL,
    session_date  DATE        NOT NULL,
    costs         JSON        NOT NULL,                  -- the cost model the replay used
    measured_at   TIMESTAMPTZ NOT NULL,
    decisions     INTEGER     NOT NULL,
    round_trips   INTEGER     NOT NULL,
    paper_pnl     DOUBLE      NOT NULL,                  -- fills' cash flows plus holdings at the day's last close
    backtest_pnl  DOUBLE      NOT NULL,
    gap           DOUBLE      NOT NULL,
    slippage      DOUBLE      NOT NULL,                  -- same bar, different price
    timing        DOUBLE      NOT NULL,                  -- a different bar
    commission    DOUBLE      NOT NULL,
    missed_fill   DOUBLE      NOT NULL,                  -- the backtest filled, paper did not
    extra_fill    DOUBLE      NOT NULL,                  -- paper filled, the backtest did not
    partial_fill  DOUBLE      NOT NULL,                  -- both filled, different quantities
    detail        JSON        NOT NULL                   -- per decision and per round trip
);
