"""Fixtures of the news tests: real sentiment classifiers too small to be any good, for tests of
choosing, switching and rescoring models (not of skill)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_classifiers(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two untrained three-way classifiers (the bundled MiniLM tokenizer, one 16-wide layer,
    different seeds): saved, loaded and scored like any model, in milliseconds."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    from tapeflow.news.sentiment import base_model_path
    from tapeflow.news.sentiment_data import LABELS

    hf_logging.disable_progress_bar()  # saving draws a bar on stderr otherwise
    tokenizer = AutoTokenizer.from_pretrained(base_model_path())
    folders = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=32, id2label=dict(enumerate(LABELS)),
                            label2id={label: i for i, label in enumerate(LABELS)})
        folder = tmp_path_factory.mktemp(f"tiny-{seed}")
        BertForSequenceClassification(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders.append(folder)
    return folders
