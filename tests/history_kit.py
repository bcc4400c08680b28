"""Hand-made parts of a strategy's History: scored headlines as the news reader leaves them."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from tapeflow.news.tickers import TAGGER
from warehouse import Warehouse
from warehouse.upsert import upsert


def scored_news(rows: list[tuple[str, datetime, timedelta, str, str, float]]) -> pl.DataFrame:
    """History.news rows from (symbol, published_at, delay to knowable, catalyst, sentiment, score)."""
    return pl.DataFrame(
        [{"symbol": sym, "source": "test", "id": f"n{i}", "headline": f"{catalyst} news about {sym}",
          "catalyst": catalyst, "sentiment": label, "sentiment_score": score,
          "polarity": score if label == "positive" else -score if label == "negative" else 0.0,
          "published_at": published, "knowable_at": published + delay}
         for i, (sym, published, delay, catalyst, label, score) in enumerate(rows)],
        schema_overrides={"published_at": pl.Datetime("us", "UTC"), "knowable_at": pl.Datetime("us", "UTC")},
    )


def store_scored_headline(warehouse: Warehouse, id: str, published: datetime, fetched: datetime, catalyst: str,
                          label: str, score: float, model: str, symbol: str = "SPY") -> None:
    """A scored headline about `symbol`, as ingest-news and score-news leave it in the warehouse."""
    with warehouse.write() as con:
        upsert(con, "news", pl.DataFrame({
            "source": ["test"], "id": [id], "published_at": [published], "fetched_at": [fetched],
            "headline": [f"{catalyst} headline {id}"], "tickers": [[symbol]], "payload_hash": ["h"],
        }), ("source", "id"))
        upsert(con, "news_tags", pl.DataFrame({
            "source": ["test"], "id": [id], "tagger": [TAGGER], "tickers": [[symbol]],
            "evidence": [f'{{"{symbol}": ["vendor"]}}'], "catalyst": [catalyst], "news_hash": ["h"], "tagged_at": [fetched],
        }), ("source", "id", "tagger", "news_hash"))
        upsert(con, "news_scores", pl.DataFrame({
            "source": ["test"], "id": [id], "model": [model], "label": [label], "score": [score],
            "polarity": [score if label == "positive" else -score], "news_hash": ["h"], "scored_at": [fetched],
        }), ("source", "id", "model", "news_hash"))
