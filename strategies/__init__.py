"""The built-in strategies: pure decision rules over a causal view of the market (no I/O, no
Prefect). tapeflow finds them through the `tapeflow.strategies` entry points in pyproject.toml
(see `tapeflow.strategy.registry`); nothing in tapeflow imports this package."""
