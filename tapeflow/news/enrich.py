"""Reading stored headlines: which tickers each is about, its catalyst class (`news_tags`),
and its sentiment under one model version (`news_scores`). Each item is read once per tagger
or model version; a new version adds rows beside the old ones. A vendor's edit of an item
(a new payload hash on its news row) is read as a new version, beside the old version's reading."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import polars as pl

from tapeflow.bar_frames import UTC_TS
from tapeflow.config import Settings
from tapeflow.news.catalysts import classify
from tapeflow.news.model_registry import NoSentimentModel, current_model
from tapeflow.news.sentiment import SentimentModel
from tapeflow.news.tickers import TAGGER, TickerTable, extract_tickers
from warehouse import Warehouse
from warehouse.upsert import upsert

TAG_SCHEMA = {"source": pl.String, "id": pl.String, "tagger": pl.String, "tickers": pl.List(pl.String),
              "evidence": pl.String, "catalyst": pl.String, "news_hash": pl.String, "tagged_at": UTC_TS}
SCORE_SCHEMA = {"source": pl.String, "id": pl.String, "model": pl.String, "label": pl.String,
                "score": pl.Float64, "polarity": pl.Float64, "news_hash": pl.String, "scored_at": UTC_TS}


def untagged(warehouse: Warehouse, tagger: str = TAGGER) -> pl.DataFrame:
    with warehouse.read() as con:
        return con.sql(
            "SELECT n.source, n.id, n.headline, n.summary, n.tickers, n.payload_hash FROM news n "
            "ANTI JOIN news_tags t ON t.source = n.source AND t.id = n.id AND t.tagger = $tagger "
            "AND t.news_hash = n.payload_hash ORDER BY n.published_at",
            params={"tagger": tagger},
        ).pl()


def unscored(warehouse: Warehouse, model: str) -> pl.DataFrame:
    with warehouse.read() as con:
        return con.sql(
            "SELECT n.source, n.id, n.headline, n.payload_hash FROM news n "
            "ANTI JOIN news_scores s ON s.source = n.source AND s.id = n.id AND s.model = $model "
            "AND s.news_hash = n.payload_hash ORDER BY n.published_at",
            params={"model": model},
        ).pl()


def tag(items: pl.DataFrame, table: TickerTable) -> pl.DataFrame:
    """Tickers (with how each was found) and the catalyst class of each item."""
    now = datetime.now(timezone.utc)
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
    """Sentiment of each item's headline under `model`."""
    sentiments = model.score(items["headline"].to_list())
    now = datetime.now(timezone.utc)
    return pl.DataFrame(
        [{"source": s, "id": i, "model": model.version, "label": r.label, "score": r.score, "polarity": r.polarity,
          "news_hash": h, "scored_at": now}
         for (s, i, h), r in zip(items.select("source", "id", "payload_hash").iter_rows(), sentiments)],
        schema=SCORE_SCHEMA,
    )


def store_tags(warehouse: Warehouse, tags: pl.DataFrame) -> int:
    with warehouse.write() as con:
        return upsert(con, "news_tags", tags, ("source", "id", "tagger", "news_hash")).stored


def store_scores(warehouse: Warehouse, scores: pl.DataFrame) -> int:
    with warehouse.write() as con:
        return upsert(con, "news_scores", scores, ("source", "id", "model", "news_hash")).stored


class NewsReader:
    """Tags and scores the headlines not yet read; the ticker table and the current sentiment
    model load once, so a stream can call it after every batch."""

    def __init__(self, settings: Settings, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        self.table = TickerTable.load()
        self.model: SentimentModel | None = None
        self.missing: str | None = None
        try:
            version, path = current_model(settings, warehouse)
            self.model = SentimentModel(path, version)
        except NoSentimentModel as exc:
            self.missing = str(exc)  # tags still help a user; scores wait for a model

    def read_new(self) -> dict[str, object]:
        """Tag, then score, every headline the tagger / model has not read: counts and model."""
        items = untagged(self.warehouse)
        tagged = store_tags(self.warehouse, tag(items, self.table)) if items.height else 0
        if self.model is None:
            return {"tagged": tagged, "scored": 0, "model": None}
        items = unscored(self.warehouse, self.model.version)
        scored = store_scores(self.warehouse, score(items, self.model)) if items.height else 0
        return {"tagged": tagged, "scored": scored, "model": self.model.version}
