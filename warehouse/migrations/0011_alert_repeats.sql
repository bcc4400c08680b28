-- A delivered alert counts the repeats of its key suppressed within its dedup window, so
-- `tapeflow alerts` shows them, and notes when their summary went out, so each window is
-- summarised once (by the next alert of the key, or by the monitor once the window closes).
ALTER TABLE alerts ADD COLUMN repeats INTEGER DEFAULT 0;
ALTER TABLE alerts ADD COLUMN last_repeat_at TIMESTAMPTZ;
ALTER TABLE alerts ADD COLUMN summarised_at TIMESTAMPTZ;
