"""The sentiment model: fine-tune it on labelled financial headlines, record what it learnt
from and how it scores on the held-out split, and make it current only if it is better."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.hooks import alert_on_failure
from flows.parameters import UNSET, AllAtZero
from tapeflow.news.sentiment import TrainParams
from tasks.news import read_new
from tasks.nlp import choose_trained, labelled_sentences, record_trained, train_model


@flow(name="train-sentiment", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def train_sentiment(
    subset: AllAtZero = UNSET,
    epochs: int = 3,
    batch_size: int = 32,
    learning_rate: float = 8e-5,
    max_length: int = 64,
    seed: int = 0,
    held_out_limit: AllAtZero = UNSET,
    make_current: bool = False,
) -> dict[str, object]:
    """Fine-tune all-MiniLM-L6-v2 with a sentiment head; `subset` trains on that many sentences
    (stratified), `held_out_limit` evaluates on that many held-out ones (default: all). The
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
    record_trained(model, data)
    verdict = choose_trained(model, held_out, data, make_current)
    # A new current model reads the stored history now, so no headline lacks its score.
    scored = read_new()["scored"] if verdict.current else 0

    report = model.held_out
    get_run_logger().info("%s: held-out accuracy %.3f, macro-F1 %.3f on %d sentences; trained in %.0f s",
                          model.version, report.accuracy, report.macro_f1, len(held_out), model.train_seconds)
    return {"version": model.version, "path": str(model.path), "accuracy": report.accuracy,
            "macro_f1": report.macro_f1, "train_rows": len(train), "held_out_rows": len(held_out),
            "train_seconds": round(model.train_seconds, 1), "current": verdict.current,
            "compared_with": verdict.rival, "compared_macro_f1": verdict.rival_macro_f1,
            "headlines_scored": scored, "verdict": verdict.sentence()}
