"""A word-list sentiment baseline: the yardstick the trained model must beat.

Counts finance-flavoured positive and negative words (stems, so "beats" and "beat" both
count) with a negation flip for the next three words; more positive than negative words is
positive, the reverse negative, a tie neutral.
"""

from __future__ import annotations

import re

from tapeflow.news.sentiment_data import clean

VERSION = "lexicon-v1"

POSITIVE = (
    "beat", "surg", "soar", "jump", "rall", "gain", "rise", "rose", "climb", "record", "upgrad", "raise",
    "rais", "boost", "strong", "growth", "grow", "profit", "outperform", "buy", "bullish", "approv", "win",
    "won", "award", "expand", "top", "exceed", "higher", "improv", "recover", "rebound", "success", "launch",
    "partnership", "acquir", "breakthrough", "positive", "upbeat", "optimis", "overweight", "accelerat",
)
NEGATIVE = (
    "miss", "fall", "fell", "drop", "plung", "slump", "sink", "sank", "tumbl", "declin", "loss", "lose", "lost",
    "cut", "downgrad", "weak", "lower", "warn", "bearish", "sell", "underperform", "recall", "lawsuit", "sue",
    "probe", "investigat", "fraud", "default", "bankrupt", "layoff", "halt", "delay", "reject", "concern",
    "fear", "risk", "slow", "disappoint", "negative", "downbeat", "underweight", "dilut", "offering", "short",
    "slash", "trim", "crash", "worst", "pressure", "headwind",
)
NEGATIONS = ("not", "no", "never", "without", "fails", "failed", "despite")
_WORD = re.compile(r"[a-z]+")


def _polarity(word: str) -> int:
    if word.startswith(POSITIVE):
        return 1
    if word.startswith(NEGATIVE):
        return -1
    return 0


def lexicon_label(text: str) -> str:
    """negative, neutral or positive by counting listed words."""
    total, flip = 0, 0
    for word in _WORD.findall(clean(text).lower()):
        if word in NEGATIONS:
            flip = 3
            continue
        value = _polarity(word)
        total += -value if flip else value
        flip = max(0, flip - 1)
    return "positive" if total > 0 else "negative" if total < 0 else "neutral"
