"""The labelled headline sets that measure the news taggers (data/news/, see docs/nlp.md).

- catalysts.csv: text, catalyst, split (dev | test), origin. Rules are tuned on dev only.
- tickers.csv:   text, tickers ("A|B", empty for none), origin.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from tapeflow.config import PROJECT_DATA
from tapeflow.news.catalysts import Catalyst

SPLITS = ("dev", "test")
_TICKER = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,9}$")


class LabelError(ValueError):
    """A labelled file has a row that cannot be read as a label."""


def catalyst_examples(split: str | None = None, data_dir: Path | None = None) -> list[tuple[str, Catalyst]]:
    """(headline, catalyst) pairs of one split, or of both when `split` is None."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    path = _news_dir(data_dir) / "catalysts.csv"
    out: list[tuple[str, Catalyst]] = []
    for line, row in _rows(path, ("text", "catalyst", "split", "origin")):
        try:
            catalyst = Catalyst(row["catalyst"].strip())
        except ValueError:
            raise LabelError(
                f"{path}:{line}: catalyst {row['catalyst']!r} is not one of {', '.join(Catalyst)}"
            ) from None
        if row["split"] not in SPLITS:
            raise LabelError(f"{path}:{line}: split {row['split']!r} is not one of {', '.join(SPLITS)}")
        if split is None or row["split"] == split:
            out.append((row["text"], catalyst))
    return out


def ticker_examples(data_dir: Path | None = None) -> list[tuple[str, frozenset[str]]]:
    """(headline, the set of US tickers it is about) pairs."""
    path = _news_dir(data_dir) / "tickers.csv"
    out: list[tuple[str, frozenset[str]]] = []
    for line, row in _rows(path, ("text", "tickers", "origin")):
        tickers = [t.strip() for t in row["tickers"].split("|")] if row["tickers"].strip() else []
        bad = [t for t in tickers if not _TICKER.match(t)]
        if bad:
            raise LabelError(f"{path}:{line}: {bad} are not tickers (upper case, 'A|B', empty for none)")
        out.append((row["text"], frozenset(tickers)))
    return out


def _news_dir(data_dir: Path | None) -> Path:
    return Path(data_dir or PROJECT_DATA) / "news"


def _rows(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    if not path.exists():
        raise FileNotFoundError(f"labelled set {path} is missing")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise LabelError(f"{path}: missing columns {missing}; expected {list(columns)}")
        # The line a row starts on, for error messages (headlines may span lines).
        return [(reader.line_num, row) for row in reader if any((v or "").strip() for v in row.values())]
