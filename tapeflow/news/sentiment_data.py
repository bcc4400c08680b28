"""Labelled financial sentences for training and evaluating sentiment models.

The bundled set is financial news headlines labelled bearish / bullish / neutral
(data/sentiment/, see data/NOTICE): `train` teaches, `valid` is held out and never trained on.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

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


def stratified_subset(examples: list[Example], n: int | None, seed: int = 0) -> list[Example]:
    """`n` examples keeping each label's share (all of them when n is None or larger)."""
    if n is None or n >= len(examples):
        return list(examples)
    if n < len(LABELS):
        raise ValueError(f"a subset needs at least {len(LABELS)} examples, one per label")
    rng = random.Random(seed)
    by_label: dict[str, list[Example]] = {}
    for example in examples:
        by_label.setdefault(example.label, []).append(example)
    picked: list[Example] = []
    for _label, group in sorted(by_label.items()):
        take = max(1, round(n * len(group) / len(examples)))
        picked += rng.sample(group, min(take, len(group)))
    rng.shuffle(picked)
    return picked[:n]


def describe(examples: list[Example], path: Path) -> dict[str, object]:
    """What a model learnt from: the file, its digest, how many rows of each label."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
    counts = Counter(e.label for e in examples)
    return {"file": path.name, "sha256": digest, "rows": len(examples), "labels": {k: counts.get(k, 0) for k in LABELS}}


def training_sets(data_dir: Path, subset: int | None, held_out_limit: int | None,
                  seed: int) -> tuple[list[Example], list[Example], dict[str, object]]:
    """Training examples (all, or a stratified subset), the held-out ones (all, or a stratified
    subset), and what they are, as sentiment_models records it."""
    train = stratified_subset(load_split("train", data_dir), subset, seed)
    held_out = stratified_subset(load_split(HELD_OUT, data_dir), held_out_limit, seed)
    data: dict[str, object] = {"train": describe(train, data_dir / "sentiment" / SPLITS["train"]),
            "held_out": describe(held_out, data_dir / "sentiment" / SPLITS[HELD_OUT]),
            "subset": subset, "held_out_limit": held_out_limit}
    return train, held_out, data
