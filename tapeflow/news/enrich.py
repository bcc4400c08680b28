"""Reading stored headlines: which tickers each is about, its catalyst class (`news_tags`),
and its sentiment under one model version (`news_scores`). Each item is read once per tagger
or model version; a new version adds rows beside the old ones. A vendor's edit of an item
(a new payload hash on its news row) is read as a new version, beside the old version's reading,
and a new model or tagger reads the replaced versions too, so replays have them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from tapeflow.calendar.exchange import ny_day
from tapeflow.config import Settings
from tapeflow.model import Runtime
from tapeflow.news.catalysts import classify
from tapeflow.news.model_registry import NoSentimentModel, current_model, day_model
from tapeflow.news.sentiment import SentimentModel
from tapeflow.news.tickers import TAGGER, TickerTable, extract_tickers
from tapeflow.schemas import UTC_TS
from warehouse import Warehouse
from warehouse.upsert import upsert

# Dtype classes (pl.String) next to instances (pl.List(...)): polars accepts either.
TAG_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "source": pl.String, "id": pl.String, "tagger": pl.String, "tickers": pl.List(pl.String),
    "evidence": pl.String, "catalyst": pl.String, "news_hash": pl.String, "tagged_at": UTC_TS}
SCORE_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "source": pl.String, "id": pl.String, "model": pl.String, "label": pl.String,
    "score": pl.Float64, "polarity": pl.Float64, "news_hash": pl.String, "scored_at": UTC_TS}


# A few hundred headlines score in a second or two: a progress line for each stream batch
# would only be noise, so only a longer history (a new model reading the past) reports one.
PROGRESS_FROM = 500

# Every version of every item: the current ones and those a vendor's edit replaced.
VERSIONS = """
    WITH versions AS (
        SELECT source, id, headline, summary, tickers, payload_hash, published_at FROM news
        UNION
        SELECT source, id, headline, summary, tickers, payload_hash, published_at FROM news_revisions)
"""


def untagged(warehouse: Warehouse, tagger: str = TAGGER) -> pl.DataFrame:
    with warehouse.read() as con:
        return con.sql(
            VERSIONS + "SELECT v.* FROM versions v ANTI JOIN news_tags t ON t.source = v.source AND t.id = v.id "
            "AND t.tagger = $tagger AND t.news_hash = v.payload_hash ORDER BY v.published_at, v.source, v.id",
            params={"tagger": tagger},
        ).pl()


def unscored(warehouse: Warehouse, model: str) -> pl.DataFrame:
    with warehouse.read() as con:
        return con.sql(
            VERSIONS + "SELECT v.* FROM versions v ANTI JOIN news_scores s ON s.source = v.source AND s.id = v.id "
            "AND s.model = $model AND s.news_hash = v.payload_hash ORDER BY v.published_at, v.source, v.id",
            params={"model": model},
        ).pl()


def tag(items: pl.DataFrame, table: TickerTable) -> pl.DataFrame:
    """Tickers (with how each was found) and the catalyst class of each item."""
    now = datetime.now(UTC)
    rows = []
    for item in items.iter_rows(named=True):
        found = extract_tickers(item["headline"], item["summary"] or "", item["tickers"] or (), table)
        rows.append({
            "source": item["source"], "id": item["id"], "tagger": TAGGER, "tickers": sorted(found),
            "evidence": json.dumps({t: list(how) for t, how in sorted(found.items())}),
            "catalyst": classify(item["headline"], item["summary"] or "").value, "news_hash": item["payload_hash"],
            "tagged_at": now,
        })
    return pl.DataFrame(rows, schema=TAG_SCHEMA)


def score(items: pl.DataFrame, model: SentimentModel) -> pl.DataFrame:
    """Sentiment of each item's headline under `model`; progress is reported for a long history."""
    work = f"scoring headlines with {model.version}" if items.height >= PROGRESS_FROM else None
    sentiments = model.score(items["headline"].to_list(), work=work)
    now = datetime.now(UTC)
    return pl.DataFrame(
        [{"source": s, "id": i, "model": model.version, "label": r.label, "score": r.score, "polarity": r.polarity,
          "news_hash": h, "scored_at": now}
         for (s, i, h), r in zip(items.select("source", "id", "payload_hash").iter_rows(), sentiments)],
        schema=SCORE_SCHEMA,
    )


def store_tags(warehouse: Warehouse, tags: pl.DataFrame) -> int:
    with warehouse.write() as con:
        # A second reader of the same version (the stream's and a poll's) leaves the first reading's time.
        return upsert(con, "news_tags", tags, ("source", "id", "tagger", "news_hash"), bookkeeping=("tagged_at",)).stored


def store_scores(warehouse: Warehouse, scores: pl.DataFrame) -> int:
    with warehouse.write() as con:
        return upsert(con, "news_scores", scores, ("source", "id", "model", "news_hash"), bookkeeping=("scored_at",)).stored


class NewsReader:
    """Tags and scores the headlines not yet read; the ticker table and the sentiment models (run by
    TAPEFLOW_SENTIMENT_RUNTIME) load once, so a stream can call it after every batch. It scores with
    the current model and with today's sessions' model when that is another (a model trained during the day)."""

    def __init__(self, settings: Settings, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        self.table = TickerTable.load()
        self.models: list[SentimentModel] = []
        self.missing: str | None = None
        today = ny_day(datetime.now(UTC))
        try:
            chosen = dict([current_model(settings, warehouse), day_model(settings, warehouse, today)])
        except NoSentimentModel as exc:
            self.missing = str(exc)  # tags still help a user; scores wait for a model
            return
        self.models = [_load(version, path, settings.sentiment_runtime) for version, path in chosen.items()]

    def read_new(self) -> dict[str, object]:
        """Tag, then score, every headline version the tagger / models have not read: counts and the current model."""
        items = untagged(self.warehouse)
        tagged = store_tags(self.warehouse, tag(items, self.table)) if items.height else 0
        scored = 0
        for model in self.models:
            items = unscored(self.warehouse, model.version)
            scored += store_scores(self.warehouse, score(items, model)) if items.height else 0
        return {"tagged": tagged, "scored": scored, "model": self.models[0].version if self.models else None}


def _load(version: str, path: str, runtime: Runtime) -> SentimentModel:
    """The model that scores stored headlines, run by `runtime`; its scores keep the model's
    version, as the runtime changes speed, not the model (docs/nlp.md)."""
    if runtime is not Runtime.TORCH and not Path(path).is_dir():
        # A Hugging Face id has no folder to put the export beside; say which setting to change.
        raise ValueError(f"TAPEFLOW_SENTIMENT_RUNTIME={runtime} runs a model in a local folder, and {version} is "
                         f"{path!r}: set TAPEFLOW_SENTIMENT_RUNTIME=torch, or TAPEFLOW_SENTIMENT_MODEL to its folder")
    return SentimentModel(path, version, runtime)
