"""Whether a newly trained sentiment model becomes current: only when it beats the current one
(or, with none current, the lexicon baseline) on macro-F1 over the same held-out sentences,
unless it is made current on purpose."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tapeflow.news.lexicon import VERSION as LEXICON
from tapeflow.news.lexicon import lexicon_label
from tapeflow.news.metrics import classification_report
from tapeflow.news.model_registry import ChoiceReason, choose_model, chosen_model
from tapeflow.news.sentiment_data import LABELS, Example
from warehouse import Warehouse


@dataclass(frozen=True)
class Verdict:
    """A trained model against its rival (the model current before it, or the lexicon baseline)."""

    version: str
    macro_f1: float
    rival: str  # a model version, or lexicon-v1 when no model was current
    rival_macro_f1: float
    sentences: int  # held-out sentences both were measured on
    reason: ChoiceReason | None  # why the new model is current now; None: it is not

    @property
    def current(self) -> bool:
        return self.reason is not None

    def sentence(self) -> str:
        """What happened, in one line."""
        ours, theirs = f"{self.macro_f1:.3f}", f"{self.rival_macro_f1:.3f}"
        rival = f"{self.rival} (baseline)" if self.rival == LEXICON else self.rival
        on = f"on the same {self.sentences:,} held-out sentences"
        if self.rival == self.version:
            return f"{self.version} stays current: retrained as before, macro-F1 {ours} {on}"
        if self.reason is ChoiceReason.MAKE_CURRENT:
            return f"made {self.version} current (--make-current): macro-F1 {ours} against {theirs} of {rival} {on}"
        if self.reason is not None:
            return f"made {self.version} current: macro-F1 {ours} > {theirs} of {rival} {on}"
        below = "<" if self.macro_f1 < self.rival_macro_f1 else "="
        switch = f"use `tapeflow nlp use {self.version}` to switch"
        if self.rival == LEXICON:
            return (f"kept no model as current: new model macro-F1 {ours} {below} {theirs} of {rival} {on}, "
                    f"so headlines stay unscored; {switch}")
        return f"kept {self.rival} as current: new model macro-F1 {ours} {below} {theirs} of {rival} {on}; {switch}"


def held_out_key(training_data: dict[str, Any], params: dict[str, Any]) -> str:
    """Which held-out sentences a model was measured on: the file (its digest and counts) and,
    for a stratified subset, its size and seed."""
    limit = training_data.get("held_out_limit")
    return json.dumps({"set": training_data.get("held_out"), "limit": limit,
                       "seed": params.get("seed") if limit else None}, sort_keys=True)


def judge(warehouse: Warehouse, *, version: str, macro_f1: float, key: str, held_out: Sequence[Example],
          make_current: bool) -> Verdict:
    """Measure the trained, recorded model `version` against the current one on `held_out` (the
    sentences behind `key`) and make it current when it wins or `make_current` says so."""
    with warehouse.read() as con:
        incumbent = chosen_model(con)
        recorded = con.execute("SELECT training_data, params, macro_f1 FROM sentiment_models WHERE version = ?",
                               [incumbent[0]]).fetchone() if incumbent else None
    if incumbent is None:
        rival = LEXICON
        rival_f1 = classification_report([e.label for e in held_out], [lexicon_label(e.text) for e in held_out],
                                         LABELS).macro_f1
    else:
        rival, path = incumbent
        data, params, recorded_f1 = recorded or ("{}", "{}", None)
        same_sentences = recorded_f1 is not None and held_out_key(json.loads(data), json.loads(params)) == key
        rival_f1 = recorded_f1 if same_sentences else _measure(rival, path, held_out)
    if rival == version:  # retrained the same way: it is current already
        return Verdict(version, macro_f1, rival, rival_f1, len(held_out), ChoiceReason.BEAT_CURRENT)
    reason = (ChoiceReason.BEAT_CURRENT if macro_f1 > rival_f1
              else ChoiceReason.MAKE_CURRENT if make_current else None)
    if reason is not None:
        choose_model(warehouse, version, reason)
    return Verdict(version, macro_f1, rival, rival_f1, len(held_out), reason)


def _measure(version: str, path: str, held_out: Sequence[Example]) -> float:
    """The current model's macro-F1 on sentences its recorded figures were not measured on."""
    from tapeflow.news.sentiment import SentimentModel  # deferred: torch and transformers

    return SentimentModel(path, version).evaluate(held_out).macro_f1
