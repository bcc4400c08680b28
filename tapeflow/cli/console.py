"""The consoles and exit codes every `tapeflow` command shares; kept light, so a command that
must start fast (the kill switch) imports nothing else."""

from __future__ import annotations

from rich.console import Console

out = Console()
err = Console(stderr=True, soft_wrap=True)

EXIT_BUSY = 3
EXIT_INTERRUPTED = 130  # as a shell reports a command stopped by Ctrl-C
EXIT_REFUSED = 2
