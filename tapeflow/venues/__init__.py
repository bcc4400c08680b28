"""Venues: one adapter per vendor behind tapeflow's interfaces (market data, watchlist, news,
broker), each vendor in one place, and `configured`, which picks the one the settings name."""
