"""The labelled finance sentiment sets tapeflow trains on, each read into Examples tagged by
source and split (data/sentiment/, provenance in data/NOTICE).

FiQA 2018 task 1 and SemEval-2017 task 5 score sentences in [-1, 1]; a score at or beyond
±NEUTRAL_BAND is negative / positive, anything strictly inside is neutral (fixed before any
model was measured on them: the middle fifth of the scale is neutral).
"""

from __future__ import annotations

import hashlib
import json
import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from tapeflow.news.sentiment_data import LABELS, Example, clean, load_split, stratified_subset

NEUTRAL_BAND = 0.2
"""|score| below this is neutral; at or above it the score's sign decides."""

SEMEVAL_TEST_SHARE = 0.2
"""SemEval's own test file has no gold scores, so this share of its training file (chosen by
a digest of the text, so repeats of one headline fall on one side) is held out instead."""


class Source(StrEnum):
    """Where a labelled sentence comes from. FiQA headlines and FiQA posts are two sources:
    edited news headlines and StockTwits posts ($cashtags, trader slang) are different text."""

    TWITTER = "twitter"
    SEMEVAL_HEADLINES = "semeval-headlines"
    FIQA_HEADLINES = "fiqa-headlines"
    FIQA_POSTS = "fiqa-posts"


class Split(StrEnum):
    TRAIN = "train"
    TEST = "test"


@dataclass(frozen=True)
class SourcedExample(Example):
    """A labelled sentence, the set it comes from and the split it belongs to there."""

    source: Source
    split: Split


_FIQA = {Source.FIQA_HEADLINES: "headline", Source.FIQA_POSTS: "post"}


def label_of(score: float) -> str:
    """negative / neutral / positive for a continuous score in [-1, 1]."""
    if score <= -NEUTRAL_BAND:
        return "negative"
    return "positive" if score >= NEUTRAL_BAND else "neutral"


def text_key(text: str) -> str:
    """What makes two sentences the same one: cleaned text, case folded."""
    return clean(text).casefold()


def load_source(source: Source, data_dir: Path) -> list[SourcedExample]:
    """Every sentence of one source, both splits; a sentence scored several times (one per
    company it names) is one example with the mean score."""
    if source is Source.TWITTER:
        return [SourcedExample(e.text, e.label, source, split)
                for split, name in ((Split.TRAIN, "train"), (Split.TEST, "valid"))
                for e in load_split(name, data_dir)]
    if source is Source.SEMEVAL_HEADLINES:
        rows = _read_json(data_dir / "sentiment" / "semeval2017_task5_headlines" / "Headline_Trainingdata.json")
        scored = _mean_scores((r["title"], float(r["sentiment"])) for r in rows)
        return [SourcedExample(text, label_of(score), source, _semeval_split(text)) for text, score in scored.items()]
    examples: list[SourcedExample] = []
    seen: set[str] = set()
    for split in (Split.TEST, Split.TRAIN):  # a sentence in both files counts as held out only
        path = data_dir / "sentiment" / "fiqa2018_task1" / f"task1_{_FIQA[source]}_ABSA_{split.value}.json"
        records = _read_json(path).values()
        scored = _mean_scores((r["sentence"], float(i["sentiment_score"])) for r in records for i in r["info"])
        for text, score in scored.items():
            if text_key(text) not in seen:
                seen.add(text_key(text))
                examples.append(SourcedExample(text, label_of(score), source, split))
    return examples


def load_sources(data_dir: Path, sources: Iterable[Source] = tuple(Source)) -> list[SourcedExample]:
    return [e for source in sources for e in load_source(source, data_dir)]


def _read_json(path: Path) -> Any:
    if not path.exists():
        raise FileNotFoundError(f"labelled sentiment data not found at {path}")
    return json.loads(path.read_text())


def _mean_scores(pairs: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Cleaned text -> mean score, first spelling kept; texts that clean to nothing are left out."""
    scores: dict[str, list[float]] = defaultdict(list)
    spelling: dict[str, str] = {}
    for text, score in pairs:
        if cleaned := clean(text):
            spelling.setdefault(text_key(cleaned), cleaned)
            scores[text_key(cleaned)].append(score)
    return {spelling[k]: statistics.fmean(v) for k, v in scores.items()}


def _semeval_split(text: str) -> Split:
    digest = int(hashlib.sha256(text_key(text).encode()).hexdigest()[:8], 16)
    return Split.TEST if digest / 0xFFFFFFFF < SEMEVAL_TEST_SHARE else Split.TRAIN


def without(train: Sequence[SourcedExample], held_out: Sequence[Example]) -> list[SourcedExample]:
    """`train` less every sentence that is also held out (FiQA and SemEval share headlines)."""
    keys = {text_key(e.text) for e in held_out}
    return [e for e in train if text_key(e.text) not in keys]


def balanced(examples: Sequence[SourcedExample], seed: int) -> list[SourcedExample]:
    """Each label cut at random to the middle label's count: neutral no longer dominates, and
    the smallest class (kept whole) is lifted the rest of the way by the loss weights."""
    by_label: dict[str, list[SourcedExample]] = defaultdict(list)
    for example in examples:
        by_label[example.label].append(example)
    cap = sorted(len(by_label[label]) for label in LABELS)[len(LABELS) // 2]
    rng = random.Random(seed)
    picked = [e for label in LABELS for e in (rng.sample(by_label[label], cap)
                                              if len(by_label[label]) > cap else by_label[label])]
    rng.shuffle(picked)
    return picked


def training_pool(examples: Sequence[SourcedExample], sources: Sequence[Source], held_out: Sequence[Example],
                  seed: int, per_source: int | None = None) -> list[SourcedExample]:
    """The train splits of `sources`, less anything held out, each cut to `per_source`
    (stratified; None: all), then balanced."""
    pool: list[SourcedExample] = []
    for source in sources:
        rows = without([e for e in examples if e.source is source and e.split is Split.TRAIN], held_out)
        pool += stratified_subset(rows, per_source, seed)
    return balanced(pool, seed)


def held_out_splits(examples: Sequence[SourcedExample], sources: Sequence[Source] = tuple(Source)) -> list[SourcedExample]:
    return [e for e in examples if e.source in sources and e.split is Split.TEST]


def source_files(source: Source, data_dir: Path) -> list[Path]:
    """The files a source is read from."""
    folder = data_dir / "sentiment"
    if source is Source.TWITTER:
        return [folder / "sent_train.csv", folder / "sent_valid.csv"]
    if source is Source.SEMEVAL_HEADLINES:
        return [folder / "semeval2017_task5_headlines" / "Headline_Trainingdata.json"]
    return [folder / "fiqa2018_task1" / f"task1_{_FIQA[source]}_ABSA_{split.value}.json" for split in Split]


def describe(examples: Sequence[SourcedExample], data_dir: Path) -> dict[str, object]:
    """What a model learnt from or was measured on: rows per label and per source, and a digest
    of every source file read."""
    digest = hashlib.sha256()
    for source in Source:
        for path in source_files(source, data_dir):
            digest.update(path.read_bytes() if path.exists() else b"")
    per_source = Counter(e.source.value for e in examples)
    return {"sources": {s.value: per_source.get(s.value, 0) for s in Source}, "sha256": digest.hexdigest(),
            "rows": len(examples), "labels": counts(examples), "neutral_band": NEUTRAL_BAND}


def training_sets(data_dir: Path, subset: int | None, held_out_limit: int | None,
                  seed: int) -> tuple[list[SourcedExample], list[SourcedExample], dict[str, object]]:
    """Every source's train split, balanced (all, or a stratified subset), every source's test
    split (all, or a stratified subset), and what they are, as sentiment_models records it."""
    examples = load_sources(data_dir)
    held_out = stratified_subset(held_out_splits(examples), held_out_limit, seed)
    train = stratified_subset(training_pool(examples, list(Source), held_out_splits(examples), seed), subset, seed)
    data: dict[str, object] = {"train": describe(train, data_dir), "held_out": describe(held_out, data_dir),
                               "subset": subset, "held_out_limit": held_out_limit}
    return train, held_out, data


def held_out_note(n: int, subset: bool) -> str:
    """How sentiment_models describes the held-out sentences a model was measured on."""
    return f"test splits of {', '.join(Source)}: {n:,} sentences" + (" (a stratified subset)" if subset else "")


def counts(examples: Sequence[Example]) -> dict[str, int]:
    """Examples per label, in LABELS order."""
    found = Counter(e.label for e in examples)
    return {label: found.get(label, 0) for label in LABELS}
