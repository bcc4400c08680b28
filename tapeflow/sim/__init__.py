"""Layer 4: the backtest engine, its fill and cost models, metrics and discipline tools."""
