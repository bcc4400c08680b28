"""What a tearsheet shows, computed without HTML: trades, periods, signals, positions."""
