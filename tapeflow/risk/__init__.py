"""Risk rules every mode shares: sizing, the daily-loss breaker and the kill switch."""
