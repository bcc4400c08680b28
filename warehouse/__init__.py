"""The DuckDB warehouse: migrations, short-lived connections, upserts, quarantine, read-only SQL."""

from warehouse.connection import Warehouse, WarehouseBusy, WarehouseMissing

__all__ = ["Warehouse", "WarehouseBusy", "WarehouseMissing", "open_warehouse"]


def open_warehouse(settings, on_busy=None) -> Warehouse:
    """The warehouse named by tapeflow settings (`warehouse_path`, `lock_timeout_s`)."""
    return Warehouse(settings.warehouse_path, lock_timeout_s=settings.lock_timeout_s, on_busy=on_busy)
