"""The sentiment model: fine-tune it on labelled financial headlines, record what it learnt
from and how it scores on the held-out split."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.hooks import alert_on_failure
from tapeflow.news.sentiment import TrainParams
from tasks.nlp import labelled_sentences, record_trained, train_model


@flow(name="train-sentiment", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def train_sentiment(
    subset: int | None = None,
    epochs: int = 3,
    batch_size: int = 32,
    learning_rate: float = 8e-5,
    max_length: int = 64,
    seed: int = 0,
    held_out_limit: int | None = None,
) -> dict[str, object]:
    """Fine-tune all-MiniLM-L6-v2 with a sentiment head; `subset` trains on that many sentences
    (stratified), `held_out_limit` evaluates on that many held-out ones (default: all)."""
    params = TrainParams(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                         max_length=max_length, seed=seed)
    train, held_out, data = labelled_sentences(subset, held_out_limit, seed)
    model = train_model(train, held_out, data, params)
    record_trained(model, data)

    report = model.held_out
    get_run_logger().info("%s: held-out accuracy %.3f, macro-F1 %.3f on %d sentences; trained in %.0f s",
                          model.version, report.accuracy, report.macro_f1, len(held_out), model.train_seconds)
    return {"version": model.version, "path": str(model.path), "accuracy": report.accuracy,
            "macro_f1": report.macro_f1, "train_rows": len(train), "held_out_rows": len(held_out),
            "train_seconds": round(model.train_seconds, 1)}
