-- How fresh each source's data is: the monitoring layer alerts on this.
CREATE TABLE source_freshness (
    source           VARCHAR     NOT NULL,
    kind             VARCHAR     NOT NULL,     -- bars:1m | bars:1d | watchlist
    last_attempt_at  TIMESTAMPTZ NOT NULL,
    last_success_at  TIMESTAMPTZ,              -- last fetch that completed and was stored
    last_data_end    TIMESTAMPTZ,              -- newest knowable instant held from this source
    last_error       VARCHAR,                  -- why the last attempt failed; NULL after a success
    PRIMARY KEY (source, kind)
);

-- Lag in seconds between now and the newest data each source has delivered.
CREATE VIEW source_lag AS
SELECT source, kind, last_success_at, last_data_end,
       date_diff('second', last_data_end, now()) AS lag_s,
       last_error
FROM source_freshness;

-- Identical rejected rows in one batch are stored once, with how many there were, so the
-- quarantine adds up to what the ingest runs report.
ALTER TABLE quarantine ADD COLUMN copies INTEGER NOT NULL DEFAULT 1;

-- A vendor's correction replaces a bar; the version it replaced is kept here with the
-- moment it stopped being current, so a replay can see what was known before the fix.
CREATE TABLE bar_revisions AS SELECT *, NULL::TIMESTAMPTZ AS superseded_at FROM bars WITH NO DATA;

-- Each snapshot row keeps the source's own entry: BullAlert's object, or the scanner's
-- score components (gap, relative volume, range expansion), so a score can be explained.
ALTER TABLE watchlist_snapshots ADD COLUMN payload VARCHAR;
