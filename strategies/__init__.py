"""Strategies: pure decision rules over a causal view of the market (no I/O, no Prefect)."""
