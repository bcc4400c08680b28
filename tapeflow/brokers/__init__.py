"""Layer 5: brokers (simulated, Alpaca, Interactive Brokers) behind one interface."""
