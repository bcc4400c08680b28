"""Prefect tasks: one unit of work each, calling into tapeflow/ and warehouse/."""
