"""Fixtures of the news tests: real sentiment classifiers too small to be any good, for tests of
choosing, switching and rescoring models (not of skill)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_classifiers(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two untrained three-way classifiers (the bundled MiniLM tokenizer, one 16-wide layer,
    different seeds): saved, loaded and scored like any model, in milliseconds."""
    return [save_tiny_classifier(tmp_path_factory.mktemp(f"tiny-{seed}"), seed) for seed in (1, 2)]


def save_tiny_classifier(folder: Path, seed: int, initializer_range: float = 0.02) -> Path:
    """An untrained classifier saved in `folder`. At BERT's usual 0.02 its outputs barely depend on
    the text; a wider `initializer_range` (0.5) gives headlines different labels and polarities."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    from tapeflow.news.sentiment import base_model_path
    from tapeflow.news.sentiment_data import LABELS

    hf_logging.disable_progress_bar()  # saving draws a bar on stderr otherwise
    tokenizer = AutoTokenizer.from_pretrained(base_model_path())
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, id2label=dict(enumerate(LABELS)),
                        label2id={label: i for i, label in enumerate(LABELS)}, initializer_range=initializer_range)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
