-- Each session states the execution policy it ran with (sizing, cap, stop, breaker, time exit,
-- decision age): the same rules a backtest report states.
ALTER TABLE trading_sessions ADD COLUMN rules JSON;
