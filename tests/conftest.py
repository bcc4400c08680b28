"""Test set-up: Prefect gets a throwaway home before it is imported, and every test that
touches the warehouse gets its own DuckDB file."""

import os
import tempfile

# Prefect reads its settings at import: isolate it first, and never talk to a real server.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="tapeflow-prefect-home-")
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Command output as wide as a wide terminal, whatever runs the tests (pytest-xdist gives its
# workers COLUMNS=80): tests read table cells whole.
os.environ["COLUMNS"] = "200"
# A developer's own settings must not leak into tests.
for _name in [n for n in os.environ if n.startswith("TAPEFLOW_")]:
    del os.environ[_name]

import logging  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tapeflow.config import PROJECT_DATA, Settings  # noqa: E402
from warehouse import Warehouse  # noqa: E402

# Prefect's log handlers outlive pytest's captured streams; their "I/O operation on closed
# file" complaints at shutdown are noise, not failures.
logging.raiseExceptions = False


@pytest.fixture(scope="session")
def prefect_harness():
    """A real Prefect API on a temporary database, shared by the flow tests."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture
def tapeflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TAPEFLOW_HOME in a temp dir, as tasks and the CLI read it from the environment."""
    home = tmp_path / "home"
    monkeypatch.setenv("TAPEFLOW_HOME", str(home))
    monkeypatch.setenv("TAPEFLOW_DATA_DIR", str(PROJECT_DATA))
    monkeypatch.setenv("TAPEFLOW_LOCK_TIMEOUT_S", "5")
    # Keep a stray .env in the working directory out of the settings under test.
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def settings(tapeflow_home: Path) -> Settings:
    return Settings()


@pytest.fixture
def warehouse(settings: Settings) -> Warehouse:
    return Warehouse(settings.warehouse_path, lock_timeout_s=5)


@pytest.fixture(scope="session")
def news_servers():
    """The fake REST news vendors (tests/news_venues.py), one server each for the whole session,
    shared by the news contract suite and the vendor files: each stop costs up to 0.5 s."""
    from tests.news_venues import NewsServers

    with NewsServers() as servers:
        yield servers
