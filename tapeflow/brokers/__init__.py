"""The broker interface every venue implements, client order ids, the ledger that records an
account in the warehouse, placing orders exactly once, reconciliation and the live gate (the
adapters themselves live in `tapeflow.venues`)."""
