"""Backtests: the engine and its market-order fast path, fills and costs, metrics, the HTML
report, loading a History from the warehouse and recording runs."""
