"""`tapeflow ingest --files`: a user's bar files read, checked and stored without a vendor or Prefect."""

from __future__ import annotations

from uuid import uuid4

from tapeflow.cli.console import refuse
from tapeflow.config import load_settings
from tapeflow.ingest.files import FilesRefused, detect_layout, find_files, ingest_files
from tapeflow.ingest.store import IngestCounts
from tapeflow.model import Timeframe
from warehouse import open_warehouse


def ingest_files_command(pattern: str, timeframe: Timeframe) -> IngestCounts:
    """Check every file named before reading any (exit 2 in one line), then ingest them in one transaction."""
    try:
        paths = find_files(pattern)
        for path in paths:
            detect_layout(path)
        return ingest_files(open_warehouse(load_settings()), paths, timeframe, run_id=str(uuid4()))
    except FilesRefused as refused:
        refuse(str(refused))
