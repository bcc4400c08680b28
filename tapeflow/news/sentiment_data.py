"""Labelled financial sentences for training and evaluating sentiment models.

The twitter set is financial news headlines labelled bearish / bullish / neutral
(data/sentiment/, see data/NOTICE): `train` teaches, `valid` is held out and never trained on.
The other sources, and the mix a model trains on, are in sentiment_sources.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import polars as pl

LABELS = ("negative", "neutral", "positive")
"""Sentiment classes, in the order every model's outputs are reported."""

SPLITS = {"train": "sent_train.csv", "valid": "sent_valid.csv"}
HELD_OUT = "valid"
_DATASET_LABELS = {0: "negative", 1: "positive", 2: "neutral"}  # the file's 0 Bearish, 1 Bullish, 2 Neutral
_LINK = re.compile(r"https?://\S+")


@dataclass(frozen=True)
class Example:
    text: str
    label: str


E = TypeVar("E", bound=Example)


def clean(text: str) -> str:
    """Text as a model sees it: links dropped (shortened URLs carry no sentiment), spaces collapsed."""
    return " ".join(_LINK.sub(" ", text).split())


def load_split(split: str, data_dir: Path) -> list[Example]:
    """One split of the bundled set; a missing file or an unknown label is a clear error.
    Rows that are only a link (three neutral ones in `train`) have no words and are left out."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    path = data_dir / "sentiment" / SPLITS[split]
    if not path.exists():
        raise FileNotFoundError(f"labelled sentiment data not found at {path}")
    frame = pl.read_csv(path, schema_overrides={"text": pl.String, "label": pl.Int64})
    unknown = sorted(set(frame["label"].to_list()) - set(_DATASET_LABELS))
    if unknown:
        raise ValueError(f"{path}: unknown labels {unknown}; expected 0, 1, 2")
    return [Example(clean(t), _DATASET_LABELS[y]) for t, y in frame.select("text", "label").iter_rows() if clean(t)]


def stratified_subset(examples: list[E], n: int | None, seed: int = 0) -> list[E]:
    """`n` examples keeping each label's share (all of them when n is None or larger)."""
    if n is None or n >= len(examples):
        return list(examples)
    if n < len(LABELS):
        raise ValueError(f"a subset needs at least {len(LABELS)} examples, one per label")
    rng = random.Random(seed)
    by_label: dict[str, list[E]] = {}
    for example in examples:
        by_label.setdefault(example.label, []).append(example)
    picked: list[E] = []
    for _label, group in sorted(by_label.items()):
        take = max(1, round(n * len(group) / len(examples)))
        picked += rng.sample(group, min(take, len(group)))
    rng.shuffle(picked)
    return picked[:n]
