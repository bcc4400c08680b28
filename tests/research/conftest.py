"""The bundled daily panel, loaded once per test module of the research tests."""

from __future__ import annotations

import pytest

from tapeflow.strategy.history import History
from tests.research_kit import full_panel


@pytest.fixture(scope="module")
def panel() -> History:
    """~30 symbols of the bundled daily panel with every one of its 245 sessions."""
    return full_panel()
