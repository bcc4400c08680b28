"""The `tapeflow` command's entry point: every command runs under one handler that turns a
mistake into one line (exit 2), any other failure into one line naming where its trace was
written (exit 1), and draws progress on a terminal. `tapeflow kill-switch`, `sql` and `backtest`
load their own module alone; every other command loads the whole CLI (polars, the strategies and the rest)."""

from __future__ import annotations

import gc
import os
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import typer

# Typer carries its own copy of click; these are the errors it raises for a command line.
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from tapeflow.cli.console import EXIT_INTERRUPTED, EXIT_REFUSED, err
from tapeflow.cli.kill_switch import kill_switch_command
from tapeflow.cli.progress_view import showing_progress
from tapeflow.cli.setting_errors import is_settings_error, settings_refusal
from tapeflow.config import load_settings
from tapeflow.redact import redact_credentials, redact_text

DEBUG_FLAG = "--debug"


def main() -> None:
    """Run the command in sys.argv; `--debug` anywhere (or TAPEFLOW_DEBUG=1) shows full traces."""
    args = sys.argv[1:]
    debug = DEBUG_FLAG in args or os.environ.get("TAPEFLOW_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != DEBUG_FLAG]
    code = run(args, debug=debug)
    gc.collect()  # release DuckDB handles a failure left referenced, before the interpreter tears down
    sys.exit(code)


def run(args: list[str], *, debug: bool = False) -> int:
    """Run one command line and return its exit status."""
    try:
        with showing_progress():
            return _invoke(args) or 0
    except NoArgsIsHelpError as exc:  # `tapeflow` or `tapeflow broker` alone: the help
        if exc.ctx is not None:
            print(exc.ctx.get_help())
        return 0
    except typer.TyperException as exc:  # usage: unknown option, missing argument, bad value
        where = exc.ctx.command_path if isinstance(exc, UsageError) and exc.ctx else "tapeflow"
        err.print(f"{where}: {' '.join(exc.format_message().split())} (see `{where} --help`)",
                  style="red", markup=False, highlight=False)
        return exc.exit_code
    except typer.Abort:
        err.print("stopped", style="red", markup=False, highlight=False)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        err.print("stopped (Ctrl-C)", style="red", markup=False, highlight=False)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            raise
        if is_settings_error(exc):  # a TAPEFLOW_* value the user set: theirs to fix, no trace needed
            err.print(settings_refusal(exc), style="red", markup=False, highlight=False)
            return EXIT_REFUSED
        log = _write_trace(exc)
        err.print(f"{type(exc).__name__}: {_masked(str(exc))}", style="red", markup=False, highlight=False)
        err.print(f"the trace is in {log}; run again with --debug to see it here"
                  if log else "run again with --debug to see the trace", style="dim", markup=False, highlight=False)
        return 1


def _invoke(args: list[str]) -> int | None:
    if args[:1] == ["kill-switch"]:
        return _alone(kill_switch_command, args)
    if args[:1] == ["sql"]:
        from tapeflow.cli.sql import sql_command  # deferred: polars and the warehouse's query, for this command only

        return _alone(sql_command, args)
    if args[:1] == ["backtest"]:
        from tapeflow.cli.backtest import backtest_command  # deferred: the engine and the strategies, for this command only

        return _alone(backtest_command, args)
    from tapeflow.cli.main import app as whole  # deferred: the whole CLI

    return whole(args=args, prog_name="tapeflow", standalone_mode=False)


def _alone(command: Callable[..., None], args: list[str]) -> int | None:
    """Run `tapeflow NAME ...` as the one command `command`, its usage and messages as under the whole CLI."""
    app = typer.Typer(add_completion=False)
    app.command()(command)
    return app(args=args[1:], prog_name=f"tapeflow {args[0]}", standalone_mode=False)


def _write_trace(exc: BaseException) -> Path | None:
    """Append the failure's trace (secrets masked) to TAPEFLOW_HOME/logs/cli.log; None if that fails."""
    try:
        log = Path(os.environ.get("TAPEFLOW_HOME", "var")).resolve() / "logs" / "cli.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        trace = "".join(traceback.format_exception(exc))
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"--- {datetime.now(UTC).isoformat()} tapeflow {' '.join(sys.argv[1:])}\n{_masked(trace)}\n")
        return log
    except OSError:
        return None


def _masked(text: str) -> str:
    """`text` with the configured secrets and anything named like a credential masked."""
    try:
        secrets = load_settings().secret_values()
    except Exception:  # settings that do not load still must not leak what the environment holds
        secrets = [v for k, v in os.environ.items() if k.startswith("TAPEFLOW_") and
                   any(word in k for word in ("KEY", "SECRET", "TOKEN", "PASSWORD", "WEBHOOK"))]
    return redact_credentials(redact_text(text, secrets))
