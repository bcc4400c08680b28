"""The trading session and what surrounds it: its clock and data feed, how it is launched, the
staged release (promotion) and the paper-versus-backtest gap."""
