"""How a `tapeflow` command runs flows in its own process: runs left behind by dead processes
are closed first, every run is tagged with this process, and SIGINT or SIGTERM stops the
command within seconds, its runs marked Crashed, with one line and exit status 130."""

from __future__ import annotations

import copy
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from rich.console import Console

from tapeflow.cli.console import EXIT_INTERRUPTED, err
from tapeflow.cli.output import prefect_environment
from tapeflow.config import Settings

if TYPE_CHECKING:
    from flows.crash_sweep import CrashedRun
    from tapeflow.live.owner import Owner

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Prefect runs some calls in the main thread under `except BaseException` and keeps what they
# raise in a future that may never be read, so the KeyboardInterrupt a signal raises can be
# lost: it is raised again after this long (Prefect's crash handling and the alert hooks take
# a few seconds) until the command is out of its flows.
RAISE_AGAIN_S = 10.0


@contextmanager
def running_flows(settings: Settings) -> Iterator[None]:
    """Wrap a command's flow calls; on SIGINT or SIGTERM inside, the process exits (130) here."""
    prefect_environment(settings)
    # deferred: Prefect takes seconds to import and reads its settings then
    from prefect.exceptions import TerminationSignal

    from flows.crash_sweep import sweep_dead_runs  # deferred: imports Prefect
    from flows.local_api import start_local_api  # deferred: imports Prefect
    from flows.run_owner import owned_runs  # deferred: imports Prefect

    stopper = _Stopper((KeyboardInterrupt, TerminationSignal))
    owner: Owner | None = None  # set once runs may carry its tag
    server = None
    try:
        server = start_local_api()
        _no_tracebacks_on_terminal()
        try:
            report_swept(sweep_dead_runs())
        except Exception as exc:  # closing old runs must not keep this command from running
            err.print(f"could not look for crashed flow runs ({type(exc).__name__}: {exc}); running anyway",
                      style="yellow", markup=False, highlight=False)
        with owned_runs() as owner:
            yield
    except BaseException as exc:
        name = stopper.stopped_by(exc)
        if name is None:
            raise
        _exit_stopped(name, owner, server)
    finally:
        stopper.restore()


class _WithoutTrace(logging.Formatter):
    """Formats a record as `inner` would, without its traceback: the command ends in one line
    naming the failure, and the trace stays in the flow run's logs and the CLI's log file."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        bare = copy.copy(record)  # the API handler still sends the record with its trace
        bare.exc_info, bare.exc_text, bare.stack_info = None, None, None
        return self.inner.format(bare)


def _no_tracebacks_on_terminal() -> None:
    """Prefect's console handler logs a failed run's traceback; a command shows one line instead."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler.formatter, _WithoutTrace):
            handler.setFormatter(_WithoutTrace(handler.formatter))


def report_swept(crashed: Sequence[CrashedRun], console: Console = err) -> None:
    """One line naming the runs a sweep marked Crashed, if any (on stderr unless told)."""
    if crashed:
        console.print(f"marked {len(crashed)} flow run(s) Crashed that a process which is gone left running: "
                      + ", ".join(map(str, crashed)), style="yellow", markup=False, highlight=False)


class _Stopper:
    """Turns SIGINT and SIGTERM into a KeyboardInterrupt in the main thread, raised again until the
    command is out of its flows, and keeps the terminal quiet from then on."""

    def __init__(self, stops: tuple[type[BaseException], ...]) -> None:
        self.stops = stops
        self.received: list[int] = []
        self.closing = False
        self.quiet = _QuietWhenStopping(stops)
        # Installed even over an inherited SIG_IGN (`tapeflow demo &` in a script): a signal
        # sent to this command must stop it. During a flow run Prefect turns SIGTERM into its own
        # TerminationSignal, records the crash, then sends SIGTERM again to this handler.
        self.previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        self.consoles = list(logging.getLogger().handlers)  # Prefect's console handler, set up at import
        for console in self.consoles:
            console.addFilter(self.quiet)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.closing:
            return
        self.received.append(signum)
        self.quiet.stopping = True
        again = threading.Timer(RAISE_AGAIN_S, self._raise_again, (signum,))
        again.daemon = True
        again.start()
        raise KeyboardInterrupt

    def _raise_again(self, signum: int) -> None:
        if not self.closing:
            os.kill(os.getpid(), signum)

    def stopped_by(self, exc: BaseException) -> str | None:
        """The signal that stopped the command, if `exc` comes of one; from now on it is closing."""
        if not (self.received or _caused_by(exc, self.stops)):
            return None
        self.closing = True
        if self.received:
            return signal.Signals(self.received[0]).name
        # A signal this handler never saw: Prefect's own SIGTERM handler, or Python's SIGINT one.
        return "SIGINT" if _caused_by(exc, (KeyboardInterrupt,)) else "SIGTERM"

    def restore(self) -> None:
        self.closing = True
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        for console in self.consoles:
            console.removeFilter(self.quiet)


class _QuietWhenStopping(logging.Filter):
    """Passes nothing to the terminal once a stop signal is being handled: tapeflow says what
    happened in one line, and Prefect's crash reports still reach each run's logs in the API."""

    def __init__(self, stops: tuple[type[BaseException], ...]) -> None:
        super().__init__()
        self.stops = stops
        self.stopping = False

    def filter(self, record: logging.LogRecord) -> bool:
        # Prefect's own SIGTERM handler runs before this module's: its crash reports are logged
        # while the TerminationSignal is being handled, so that is how they are recognised.
        if not self.stopping and isinstance(sys.exc_info()[1], self.stops):
            self.stopping = True
        return not self.stopping


def _caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """Whether `exc`, or an exception it was raised while handling, is one of `kinds` (Prefect
    can fail handling an interrupt that lands while it creates a run)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kinds):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _exit_stopped(name: str, owner: Owner | None, server: object | None) -> NoReturn:
    """Close this process's runs in Prefect, say so in one line, stop the local API, exit 130."""
    from flows.crash_sweep import crash_own_runs  # deferred: Prefect, imported by now

    for sig in STOP_SIGNALS:  # a second Ctrl-C while closing the runs: leave at once
        signal.signal(sig, lambda signum, frame: os._exit(EXIT_INTERRUPTED))
    try:
        # The flow runs Prefect's engine was driving are Crashed already; task runs still in a
        # task runner's threads, and runs it was creating when the signal landed, are not.
        if owner is None:  # stopped while the local API started or old runs were swept
            line = f"stopped by {name} before any flow run started"
        else:
            crash_own_runs(owner, f"tapeflow was stopped by {name} before this run finished")
            line = f"stopped by {name}: this command's flow runs are marked Crashed in Prefect; run it again to resume"
    except Exception as exc:  # the API is gone too: the next tapeflow command's sweep closes them
        line = (f"stopped by {name}: its flow runs could not be closed in Prefect ({type(exc).__name__}); "
                f"the next tapeflow command marks them Crashed")
    err.print(line, style="red", markup=False, highlight=False)
    stop_server = getattr(server, "stop", None)
    if stop_server is not None:
        stop_server()
    sys.stdout.flush()
    sys.stderr.flush()
    # Not sys.exit: interpreter shutdown joins the task runner's worker threads, which would
    # hold the process for as long as the task each is in the middle of.
    os._exit(EXIT_INTERRUPTED)
