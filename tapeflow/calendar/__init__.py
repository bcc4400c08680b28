"""Exchange sessions (holidays, half days, extended hours) on exchange_calendars, and the
windows schedules cover."""
