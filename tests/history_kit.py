"""Hand-made parts of a strategy's History: scored headlines as the news reader leaves them."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl


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
