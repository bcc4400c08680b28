"""Prefect's temporary local API for a tapeflow command, started deaf to the terminal's Ctrl-C.

Ctrl-C signals the terminal's whole process group. Prefect starts its temporary API as a child
in that group, so the API died with the same keypress and the interrupted runs could not be
recorded: they stayed Running, and the command hung in the client's retries. Started here with
SIGINT blocked (a child inherits the signal mask), the API keeps answering until tapeflow has
recorded how its runs ended. Prefect stops it when the command exits; tapeflow stops it itself
when a signal ends the command (tapeflow/cli/flow_runs.py).
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from prefect.settings import get_current_settings

if TYPE_CHECKING:
    from prefect.server.api.server import SubprocessASGIServer


def start_local_api() -> SubprocessASGIServer | None:
    """Start the temporary API now, unless a Prefect API is configured; returns it to stop."""
    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        return None  # a real server (tapeflow serve, or the user's), or no local API at all
    from prefect.server.api.server import SubprocessASGIServer  # deferred: the whole server package

    server = SubprocessASGIServer()  # the instance Prefect's own clients use when no URL is set
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        server.start()
    except BaseException:
        # SIGINT is blocked in this thread only: another thread takes a Ctrl-C and Python raises
        # it here. The half-started API, deaf to Ctrl-C, must not outlive the command.
        server.stop()
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return server
