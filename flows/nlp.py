"""The sentiment model: fine-tune it on the labelled finance sentences of every source, record
what it learnt from and how it scores on their held-out splits, and make it current only if it is better."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.hooks import alert_on_failure
from flows.parameters import UNSET, AllAtZero, OptionalName
from tapeflow.config import load_settings
from tapeflow.news.model_handoff import move_into, read_trained, waiting_models
from tapeflow.news.sentiment import TrainParams
from tasks.nlp import adopt, keep_model, labelled_sentences, train_model


@flow(name="train-sentiment", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def train_sentiment(
    subset: AllAtZero = UNSET,
    epochs: int = 2,
    batch_size: int = 32,
    learning_rate: float = 8e-5,
    max_length: int = 64,
    seed: int = 0,
    held_out_limit: AllAtZero = UNSET,
    make_current: bool = False,
) -> dict[str, object]:
    """Fine-tune all-MiniLM-L6-v2 with a sentiment head on every source's train split, classes
    balanced; `subset` trains on that many sentences (stratified), `held_out_limit` evaluates
    on that many of the sources' test sentences (default: all). The
    model becomes current, and reads every stored headline, only if it beats the current one
    (or the lexicon baseline) on the same held-out sentences, or with `make_current`.

    Args:
        subset: Train on this many sentences (stratified); 0 means all.
        epochs: Passes over the training sentences.
        batch_size: Sentences per training step.
        learning_rate: Optimizer step size.
        max_length: Tokens read per sentence.
        seed: Random seed (same seed, same model).
        held_out_limit: Evaluate on this many held-out sentences; 0 means all.
        make_current: Make the model current even if it scores worse than the current one.
    """
    params = TrainParams(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                         max_length=max_length, seed=seed)
    train, held_out, data = labelled_sentences(subset, held_out_limit, seed)
    model = train_model(train, held_out, data, params)
    kept = keep_model(model, held_out, data, make_current)

    report = model.held_out
    get_run_logger().info("%s: held-out accuracy %.3f, macro-F1 %.3f on %d sentences; trained in %.0f s",
                          model.version, report.accuracy, report.macro_f1, len(held_out), model.train_seconds)
    return {"version": model.version, "path": str(model.path), "accuracy": report.accuracy,
            "macro_f1": report.macro_f1, "train_rows": len(train), "held_out_rows": len(held_out),
            "train_seconds": round(model.train_seconds, 1), **kept}


@flow(name="adopt-model", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def adopt_model(folder: OptionalName = UNSET, make_current: bool = False) -> dict[str, object]:
    """Take a model a compute machine trained (its folder under TAPEFLOW_HANDOFF_DIR) into this
    machine's models, record it and make it current if it wins; blank folder: every one waiting.

    Args:
        folder: The handed-back model's folder; blank: every model waiting.
        make_current: Make it current even if it scores worse than the current one.
    """
    settings = load_settings()
    root = settings.handoff_path
    adopted = []
    for waiting in [Path(folder)] if folder else waiting_models(root):
        handed, data = read_trained(root, waiting)
        model = move_into(handed, settings.home.resolve() / "models")
        # The held-out sentences it was measured on, as the compute machine chose them from the same data.
        _, held_out, _ = labelled_sentences(data["subset"], data["held_out_limit"], model.params.seed)
        adopted.append({"version": model.version, **adopt(model, held_out, data, make_current)})
        get_run_logger().info("adopted %s: %s", model.version, adopted[-1]["verdict"])
    return {"models": adopted}
