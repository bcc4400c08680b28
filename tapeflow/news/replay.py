"""Headlines replayed from JSON Lines files, as they were captured: each line one item with
`id`, `published_at`, `fetched_at` (ISO-8601 with an offset), `headline`, and optionally
`summary`, `url`, `tickers`, `category`, `author`. The bundled sample (data/news/replay/) is
text written for the demo (see data/NOTICE)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from tapeflow.model import parse_instant
from tapeflow.news.frames import empty_raw_news, news_row, raw_news
from tapeflow.sources.base import Window

NAME = "replay"


class ReplayNews:
    """A NewsSource over the *.jsonl files of one folder."""

    name = NAME

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder) / "replay"

    def close(self) -> None:
        pass

    def news(self, symbols: Sequence[str] | None, window: Window) -> pl.DataFrame:
        """Items published in `window` (undated ones too: they go to the quarantine) about `symbols`."""
        rows = [row for path in sorted(self.folder.glob("*.jsonl")) for row in _rows(path)]
        if not rows:
            return empty_raw_news()
        frame = raw_news(rows)
        published = pl.col("published_at")
        keep = published.is_null() | published.is_between(window.start, window.end, closed="left")
        if symbols is not None:
            keep = keep & pl.col("tickers").list.set_intersection(list(symbols)).list.len().gt(0)
        return frame.filter(keep)


def _rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.append(news_row(NAME, payload=line, problem=f"{path.name}:{number} is not JSON: {exc.msg}"))
            continue
        if not isinstance(item, dict):
            rows.append(news_row(NAME, payload=line, problem=f"{path.name}:{number} is not a JSON object"))
            continue
        published, p1 = _instant("published_at", item.get("published_at"))
        fetched, p2 = _instant("fetched_at", item.get("fetched_at"))
        tickers = item.get("tickers") or []
        p3 = None if isinstance(tickers, list) and all(isinstance(t, str) for t in tickers) else "tickers is not a list of text"
        rows.append(news_row(
            NAME, id=item.get("id"), published_at=published, fetched_at=fetched, headline=item.get("headline"),
            summary=item.get("summary"), url=item.get("url"), tickers=tickers if p3 is None else None,
            category=item.get("category"), author=item.get("author"), payload=item,
            problem="; ".join(p for p in (p1, p2, p3) if p) or None,
        ))
    return rows


def _instant(name: str, value: Any) -> tuple[datetime | None, str | None]:
    if value is not None and not isinstance(value, str):
        return None, f"{name} is not text: {value!r}"
    return parse_instant(name, value)
