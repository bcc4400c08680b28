"""Load universes (records and point-in-time membership) from their files into the warehouse."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.hooks import alert_on_failure
from flows.parameters import UNSET, OptionalName
from tapeflow.config import load_settings
from tapeflow.sources.universe_files import UNIVERSE_DIR
from tasks.universe import check, read_files, store

SOURCE = "universe-files"


@flow(name="ingest-universe", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def ingest_universe(folder: OptionalName = UNSET) -> dict[str, int]:
    """Store the universes of `folder` (default: the bundled data/universes/): universes.csv and
    one members file each; a second load of the same files stores nothing new.

    Args:
        folder: Folder holding universes.csv and one members file per universe; blank means the bundled data/universes/.
    """
    path = Path(folder) if folder else load_settings().data_dir / UNIVERSE_DIR
    started_at = datetime.now(UTC)
    records, members = read_files(str(path))
    checked = check(records, members)
    counts = store(checked, flow_run.id or str(uuid4()), SOURCE, {"folder": str(path)}, started_at)
    get_run_logger().info("universes from %s: %d records, %d members; %s", path, checked.records.height,
                          checked.members.height, counts.as_dict())
    return {**counts.as_dict(), "universes": checked.records.height}
