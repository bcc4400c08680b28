"""The DuckDB warehouse: migrations, short-lived connections, upserts, quarantine, read-only SQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from warehouse.connection import Warehouse, WarehouseBusy, WarehouseMissing

if TYPE_CHECKING:  # importing the warehouse should not load the settings machinery
    from tapeflow.config import Settings

__all__ = ["Warehouse", "WarehouseBusy", "WarehouseMissing", "open_warehouse"]


def open_warehouse(settings: Settings, on_busy: Callable[[str], None] | None = None) -> Warehouse:
    """The warehouse named by tapeflow settings (`warehouse_path`, `lock_timeout_s`, `archive_path`)."""
    return Warehouse(settings.warehouse_path, lock_timeout_s=settings.lock_timeout_s, on_busy=on_busy,
                     archive=settings.archive_path)
