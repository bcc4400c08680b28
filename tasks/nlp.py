"""Tasks for the sentiment model: load labelled data, fine-tune, record the model, decide
whether it becomes current."""

from __future__ import annotations

from dataclasses import asdict

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tapeflow.config import load_settings
from tapeflow.model import Role
from tapeflow.news.model_choice import Verdict, held_out_key, judge
from tapeflow.news.model_handoff import model_handoff_dir, write_trained
from tapeflow.news.model_registry import record_model
from tapeflow.news.sentiment import (
    BASE_NAME,
    TrainedModel,
    TrainParams,
    fine_tune,
    model_version,
)
from tapeflow.news.sentiment_data import Example
from tapeflow.news.sentiment_sources import held_out_note, training_sets
from tasks.handoff import run_in_warehouse_pool
from tasks.news import read_new
from warehouse import open_warehouse


@task(cache_policy=NO_CACHE)
def labelled_sentences(subset: int | None, held_out_limit: int | None, seed: int) -> tuple[list[Example], list[Example], dict]:
    """Training examples of every source (balanced; all, or a stratified subset) and every
    source's held-out split, with what they are."""
    return training_sets(load_settings().data_dir, subset, held_out_limit, seed)


ADOPT_DEPLOYMENT = "adopt-model/adopt-handed-back-model"
"""The warehouse pool's deployment that records and judges a model trained on a compute machine."""


@task(cache_policy=NO_CACHE)
def train_model(train: list[Example], held_out: list[Example], data: dict, params: TrainParams) -> TrainedModel:
    version = model_version(BASE_NAME, data["train"], params)  # how it is measured does not change the model
    settings = load_settings()
    # On a compute machine the model is trained straight into the handoff folder the warehouse takes it from.
    out_dir = (model_handoff_dir(settings.handoff_path, version) if settings.role is Role.COMPUTE
               else settings.home.resolve() / "models" / version)
    logger = get_run_logger()
    logger.info("fine-tuning %s on %d sentences (%d epochs) into %s", BASE_NAME, len(train), params.epochs, out_dir)
    return fine_tune(train, held_out, out_dir, version, params, log=logger.info)


def keep_model(model: TrainedModel, held_out: list[Example], data: dict, make_current: bool) -> dict[str, object]:
    """Record and judge the model here (the warehouse machine), or on a compute machine hand it
    back and wait for the warehouse pool to; what was decided, or which run decides it."""
    if load_settings().role is Role.COMPUTE:
        write_trained(model, data)
        adopted = run_in_warehouse_pool(ADOPT_DEPLOYMENT, {"folder": str(model.path)}, f"the model in {model.path}")
        get_run_logger().info("handed back %s; adopted by flow run %s", model.version, adopted.name)
        return {"adopted_by": adopted.name}
    return adopt(model, held_out, data, make_current)


def adopt(model: TrainedModel, held_out: list[Example], data: dict, make_current: bool) -> dict[str, object]:
    """Record the model, make it current if it wins, and then let it read every stored headline."""
    record_trained(model, data)
    verdict = choose_trained(model, held_out, data, make_current)
    # A new current model reads the stored history now, so no headline lacks its score.
    scored = read_new()["scored"] if verdict.current else 0
    return {"current": verdict.current, "compared_with": verdict.rival, "compared_macro_f1": verdict.rival_macro_f1,
            "headlines_scored": scored, "verdict": verdict.sentence()}


@task(cache_policy=NO_CACHE, tags=["duckdb-writer"])
def record_trained(model: TrainedModel, data: dict) -> None:
    record_model(open_warehouse(load_settings()), version=model.version, base_model=BASE_NAME, path=model.path,
                 training_data=data, params=asdict(model.params),
                 held_out=held_out_note(model.held_out.n, bool(data["held_out_limit"])),
                 report=model.held_out, train_seconds=model.train_seconds)


@task(cache_policy=NO_CACHE, tags=["duckdb-writer"])
def choose_trained(model: TrainedModel, held_out: list[Example], data: dict, make_current: bool) -> Verdict:
    """Make the recorded model current if it beats the current one (or the lexicon baseline)
    on the same held-out sentences, or if `make_current` says so."""
    verdict = judge(open_warehouse(load_settings()), version=model.version, macro_f1=model.held_out.macro_f1,
                    key=held_out_key(data, asdict(model.params)), held_out=held_out, make_current=make_current)
    get_run_logger().info(verdict.sentence())
    return verdict
