"""The `tapeflow` command: one module per command group, shared output in `output`; the only
code that imports `flows`."""
