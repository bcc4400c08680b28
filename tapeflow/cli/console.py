"""The consoles, exit codes and one-line refusals every `tapeflow` command shares; kept light, so
a command that must start fast (the kill switch) imports nothing else."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True, soft_wrap=True)

EXIT_BUSY = 3
EXIT_INTERRUPTED = 130  # as a shell reports a command stopped by Ctrl-C
EXIT_REFUSED = 2


def refuse(message: str) -> NoReturn:
    """Exit 2 with one line on stderr: the problem and how to fix it."""
    err.print(message, style="red", markup=False, highlight=False, emoji=False)
    raise typer.Exit(EXIT_REFUSED)


def check_option(option: str, ok: bool, rule: str, got: object, example: str) -> None:
    """Exit 2 in one line when an option's value breaks its rule: checked before anything starts."""
    if not ok:
        refuse(f"{option} must be {rule}, got {got}: e.g. {example}")
