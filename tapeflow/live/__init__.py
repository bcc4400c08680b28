"""Layer 6 in motion: the trading session, its risk state, monitoring and the staged release."""
