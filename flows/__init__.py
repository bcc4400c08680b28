"""Prefect flows: what runs when, with retries and alerts. Orchestration only."""

from flows.run_logs import one_trace_per_error

one_trace_per_error()  # every flow run, whichever process imports the flows
