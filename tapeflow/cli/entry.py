"""The `tapeflow` command: `tapeflow kill-switch ...` runs straight away, every other command
loads the whole CLI (which takes its time importing polars, the strategies and the rest)."""

from __future__ import annotations

import sys

import typer

from tapeflow.cli.kill_switch import kill_switch_command


def main() -> None:
    if sys.argv[1:2] == ["kill-switch"]:
        app = typer.Typer(add_completion=False)
        app.command()(kill_switch_command)
        app(args=sys.argv[2:], prog_name="tapeflow kill-switch")
        return
    from tapeflow.cli.main import app as whole  # deferred: the whole CLI

    whole()
