"""Ingest: the checks that split a raw batch (bars, watchlist, news) into rows to store and rows
to quarantine, and the one transaction that stores both."""
