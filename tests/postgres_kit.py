"""A PostgreSQL cluster for a test module: Debian's server, started in a folder of /tmp that the
postgres user can enter (under root, pytest's own temporary folders are closed to it)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tapeflow.cli.postgres import PostgresError, ensure_local_postgres, find_bin_dir, stop_local_postgres
from tests.cli.test_serve import free_port


@contextmanager
def local_postgres() -> Iterator[str]:
    """Prefect's URL for a fresh local cluster, stopped and removed afterwards; skips without PostgreSQL."""
    try:
        find_bin_dir()
    except PostgresError as exc:
        pytest.skip(f"{exc} (.ci/run installs it)")
    parent = Path(tempfile.mkdtemp(prefix="tapeflow-test-pg-"))
    parent.chmod(0o711)
    root = parent / "cluster"
    try:
        yield ensure_local_postgres(root, free_port())
    finally:
        stop_local_postgres(root)
        shutil.rmtree(parent, ignore_errors=True)
