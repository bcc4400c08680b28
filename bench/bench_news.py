"""Headlines per second: batched sentiment scoring with torch (the reference), with ONNX Runtime
(float32 and int8 weights), against the Hugging Face pipeline and one-at-a-time scoring of the
same model, plus the rule readers (tickers and catalyst class).

    .venv/bin/python bench/bench_news.py --model var/models/<version> --runs 5 [--timed 800]

Data: the held-out test splits of every labelled source (2,767 sentences, 2,388 of them the
twitter headlines), the same for every way (`--timed N` times them on every k-th, about N,
when the machine is slow). Each model way reports its label agreement with the torch reference
and its macro-F1 over all of them; runs of the ways are interleaved, so background load falls
on all of them alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnxruntime
import torch

from tapeflow.config import PROJECT_DATA
from tapeflow.model import Runtime
from tapeflow.news.catalysts import classify
from tapeflow.news.lexicon import lexicon_label
from tapeflow.news.metrics import classification_report
from tapeflow.news.sentiment import SentimentModel
from tapeflow.news.sentiment_data import LABELS, clean
from tapeflow.news.sentiment_sources import held_out_splits, load_sources
from tapeflow.news.tickers import TickerTable, extract_tickers


def interleaved(ways: dict[str, Callable[[], Any]], runs: int) -> dict[str, tuple[float, Any]]:
    """Median seconds and the last result of each way, the ways taking turns run by run."""
    times: dict[str, list[float]] = {name: [] for name in ways}
    results: dict[str, Any] = {}
    for _ in range(runs):
        for name, fn in ways.items():
            start = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), results[name]) for name in ways}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a fine-tuned model folder (var/models/VERSION)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--single", type=int, default=300, help="headlines for the one-at-a-time peer")
    parser.add_argument("--timed", type=int, default=None,
                        help="time the ways on about this many sentences, every k-th (default all); agreement and "
                             "macro-F1 are always over all of them")
    args = parser.parse_args()

    held_out = held_out_splits(load_sources(PROJECT_DATA))
    texts, truth = [e.text for e in held_out], [e.label for e in held_out]
    version = Path(args.model.rstrip("/")).name
    reference = SentimentModel(args.model, version)
    made = time.perf_counter()
    onnx = SentimentModel(args.model, version, Runtime.ONNX)  # exports on first use
    int8 = SentimentModel(args.model, version, Runtime.ONNX_INT8)
    made = time.perf_counter() - made
    from transformers import pipeline

    peer = pipeline("text-classification", model=args.model, tokenizer=args.model, device=-1, top_k=None)

    def pipeline_labels(batch: list[str], batch_size: int) -> list[str]:
        out = peer([clean(t) for t in batch], batch_size=batch_size, truncation=True, max_length=128)
        return [max(scores, key=lambda s: s["score"])["label"] for scores in out]

    timed = texts[:: max(1, len(texts) // args.timed)] if args.timed else texts

    def labels(model: SentimentModel, batch_size: int, on: list[str] = timed) -> Callable[[], list[str]]:
        return lambda: [s.label for s in model.score(on, batch_size=batch_size)]

    # way -> (the model and runtime it measures, its timed call)
    model_ways: dict[str, tuple[str, Callable[[], list[str]]]] = {
        "reference: torch SentimentModel.score, batch 64, length-sorted": ("torch", labels(reference, 64)),
        "ONNX Runtime float32, batch 64, length-sorted": ("onnx", labels(onnx, 64)),
        "ONNX Runtime float32, batch 16 (its default), length-sorted": ("onnx", labels(onnx, 16)),
        "ONNX Runtime int8 weights, batch 64, length-sorted": ("int8", labels(int8, 64)),
        "ONNX Runtime int8 weights, batch 16, length-sorted": ("int8", labels(int8, 16)),
        "peer: transformers pipeline, batch_size 64": ("pipeline", lambda: pipeline_labels(timed, 64)),
    }
    measured = interleaved({name: fn for name, (_, fn) in model_ways.items()}, args.runs)
    # Quality over every sentence, once per model and runtime (the batch size changes no label).
    quality = {"torch": labels(reference, 64, texts)(), "onnx": labels(onnx, 64, texts)(),
               "int8": labels(int8, 64, texts)(), "pipeline": pipeline_labels(texts, 64)}
    rows = []
    for name, (seconds, _) in measured.items():
        got = quality[model_ways[name][0]]
        agree = sum(a == b for a, b in zip(got, quality["torch"])) / len(texts)
        f1 = classification_report(truth, got, LABELS).macro_f1
        rows.append((name, len(timed), seconds, f"{agree:.2%}", f"{f1:.3f}"))
    few = texts[: args.single]
    single = interleaved({"torch": lambda: [reference.score([t], batch_size=1)[0].label for t in few],
                          "int8": lambda: [int8.score([t], batch_size=1)[0].label for t in few]},
                         max(1, args.runs // 2))
    rows += [("peer: one headline per call, torch", len(few), single["torch"][0], "", ""),
             ("one headline per call, ONNX int8", len(few), single["int8"][0], "", "")]
    table = TickerTable.load()
    rules = interleaved({"rules": lambda: [(extract_tickers(t, table=table), classify(t)) for t in texts],
                         "lexicon": lambda: [lexicon_label(t) for t in texts]}, args.runs)
    rows += [("rules-v1: tickers + catalyst class", len(texts), rules["rules"][0], "", ""),
             ("lexicon-v1 baseline", len(texts), rules["lexicon"][0], "",
              f"{classification_report(truth, rules['lexicon'][1], LABELS).macro_f1:.3f}")]

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__}, load average "
          f"{os.getloadavg()[0]:.1f}; model {version}; ONNX export + int8 quantization (or reuse) {made:.1f} s")
    print(f"labels and macro-F1 over all {len(texts):,} held-out sentences; times over the sentences shown")
    print("| way | sentences | median | sentences/s | labels as the reference | macro-F1 |\n|---|---:|---:|---:|---:|---:|")
    for name, n, seconds, agree, f1 in rows:
        print(f"| {name} | {n:,} | {seconds:.3f} s | {n / seconds:,.0f} | {agree} | {f1} |")
    ref_t = measured["reference: torch SentimentModel.score, batch 64, length-sorted"][0]
    int8_t = measured["ONNX Runtime int8 weights, batch 64, length-sorted"][0]
    print(f"ratio: ONNX int8 (batch 64) {ref_t / int8_t:.2f}x the torch reference, "
          f"{measured['peer: transformers pipeline, batch_size 64'][0] / int8_t:.2f}x the pipeline")


if __name__ == "__main__":
    main()
