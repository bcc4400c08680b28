"""Prefect flows: what runs when, with retries and alerts. Orchestration only."""
