-- The process that claimed a session (host:pid): a restart takes over at once when that
-- process is provably gone, instead of waiting out the dead run's lease.
ALTER TABLE trading_sessions ADD COLUMN owner VARCHAR;
