"""Who runs something: a process on a host (`host:pid`), recorded with a session's claim or
on a flow run, and whether that process is provably gone, so a restart can take over at once
instead of waiting out a dead run's lease."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

# Sessions running in this process right now: a claim by this very process whose session is
# not among them belongs to a run that died (raised) here.
_RUNNING: set[str] = set()


@dataclass(frozen=True)
class Owner:
    """A process on a host, written `host:pid`."""

    host: str
    pid: int

    @classmethod
    def here(cls) -> Owner:
        return cls(socket.gethostname(), os.getpid())

    @classmethod
    def parse(cls, text: str | None) -> Owner | None:
        """The owner `host:pid` names; None for anything else."""
        host, _, pid = (text or "").rpartition(":")
        return cls(host, int(pid)) if host and pid.isdigit() else None

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"

    def gone(self) -> bool:
        """Whether it provably runs no more: on this host, its process is not alive (another
        host's is never provably gone)."""
        return self.host == socket.gethostname() and process_gone(self.pid)


def process_gone(pid: int) -> bool:
    """Whether no process `pid` runs on this host; a zombie (dead, not yet reaped) is gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: alive
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):  # no /proc (macOS): signal 0 answered, so it is alive
        return False


def session_owner_gone(owner: str | None, session_id: str) -> bool:
    """Whether the process recorded as running `session_id` can no longer be running it: gone,
    or this very process with the session not running here."""
    recorded = Owner.parse(owner)
    if recorded is None:
        return False
    if recorded == Owner.here():
        return session_id not in _RUNNING
    return recorded.gone()


def running(session_id: str) -> None:
    _RUNNING.add(session_id)


def stopped(session_id: str) -> None:
    _RUNNING.discard(session_id)
