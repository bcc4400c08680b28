-- Market data, watchlists, news and the quarantine: the tables ingestion writes.
-- Storage is UTC (TIMESTAMPTZ); every row says where it came from and when it was seen.

CREATE TABLE bars (
    symbol       VARCHAR     NOT NULL,
    timeframe    VARCHAR     NOT NULL,            -- '1m' | '1d'
    ts           TIMESTAMPTZ NOT NULL,            -- bar start
    end_ts       TIMESTAMPTZ NOT NULL,            -- bar end: the moment the bar is knowable
    open         DOUBLE      NOT NULL,
    high         DOUBLE      NOT NULL,
    low          DOUBLE      NOT NULL,
    close        DOUBLE      NOT NULL,
    volume       DOUBLE      NOT NULL,
    vwap         DOUBLE,
    trade_count  BIGINT,
    adjustment   VARCHAR     NOT NULL,            -- raw | split | all | unknown
    source       VARCHAR     NOT NULL,
    ingested_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (symbol, timeframe, ts)
);

CREATE TABLE watchlist_snapshots (
    source        VARCHAR     NOT NULL,
    session       VARCHAR     NOT NULL,           -- pre_market | market | after_hours
    as_of         TIMESTAMPTZ NOT NULL,           -- when the source says the list was true
    ticker        VARCHAR     NOT NULL,
    rank          INTEGER     NOT NULL,
    score         DOUBLE      NOT NULL,           -- 0..100
    fetched_at    TIMESTAMPTZ NOT NULL,           -- when tapeflow first saw it
    payload_hash  VARCHAR     NOT NULL,
    PRIMARY KEY (source, session, as_of, ticker)
);

CREATE TABLE news (
    source        VARCHAR     NOT NULL,
    id            VARCHAR     NOT NULL,
    published_at  TIMESTAMPTZ NOT NULL,
    fetched_at    TIMESTAMPTZ NOT NULL,
    headline      VARCHAR     NOT NULL,
    summary       VARCHAR,
    url           VARCHAR,
    tickers       VARCHAR[],
    category      VARCHAR,
    PRIMARY KEY (source, id)
);

-- Rejected input, kept whole: the raw payload, why it was refused, and when it was first seen.
-- Keyed on the payload's hash so that re-running an ingest does not pile up copies.
CREATE TABLE quarantine (
    source        VARCHAR     NOT NULL,
    kind          VARCHAR     NOT NULL,           -- bars | watchlist | news ...
    payload_hash  VARCHAR     NOT NULL,
    reason        VARCHAR     NOT NULL,
    payload       VARCHAR     NOT NULL,           -- the row as the vendor sent it (JSON)
    received_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, kind, payload_hash)
);

-- One row per ingest run: counts in, stored, unchanged, quarantined.
CREATE TABLE ingest_runs (
    run_id        VARCHAR     NOT NULL PRIMARY KEY,
    kind          VARCHAR     NOT NULL,
    source        VARCHAR     NOT NULL,
    params        JSON        NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ NOT NULL,
    fetched       BIGINT      NOT NULL,
    inserted      BIGINT      NOT NULL,
    updated       BIGINT      NOT NULL,
    unchanged     BIGINT      NOT NULL,
    quarantined   BIGINT      NOT NULL
);
