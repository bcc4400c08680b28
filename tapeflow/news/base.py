"""The interface every news source implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import polars as pl

from tapeflow.sources.base import Window


@runtime_checkable
class NewsSource(Protocol):
    """Headlines from one vendor, as a raw batch (see `tapeflow.news.frames.RAW_NEWS_SCHEMA`).

    Like market-data adapters, news adapters never validate or drop items: every item the
    vendor sent comes back with its JSON in `payload`, and what could not be read is said in
    `problem`, so the quarantine receives it whole. `fetched_at` is when the page arrived.
    """

    name: str

    def news(self, symbols: Sequence[str] | None, window: Window) -> pl.DataFrame:
        """Items about `symbols` (None: all the vendor sends) published within `window`."""
        ...

    def close(self) -> None:
        ...
