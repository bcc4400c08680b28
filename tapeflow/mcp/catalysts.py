"""`recent_catalysts`: tagged headlines, newest first, with their class and current-model sentiment."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from pydantic import AwareDatetime, Field

from tapeflow.mcp.market import Symbol
from tapeflow.mcp.reading import Reader, json_rows
from tapeflow.mcp.records import Rows
from tapeflow.news.catalysts import Catalyst
from tapeflow.news.model_registry import chosen_model
from tapeflow.news.tickers import TAGGER

# The current version of each headline; sentiment under the current model, when one scored it.
# knowable_at: when tapeflow had the headline (fetched); scored_at: when its sentiment was.
_CATALYSTS = """
    SELECT n.published_at, n.fetched_at AS knowable_at, n.source, n.id, t.tickers, t.catalyst, n.headline, n.url,
           s.label AS sentiment, s.score AS sentiment_score, s.polarity, s.model, s.scored_at
    FROM news n
    JOIN news_tags t ON t.source = n.source AND t.id = n.id AND t.tagger = $tagger AND t.news_hash = n.payload_hash
    LEFT JOIN news_scores s ON s.source = n.source AND s.id = n.id AND s.model = $model AND s.news_hash = n.payload_hash
    WHERE ($since IS NULL OR n.published_at >= $since)
      AND ($symbol IS NULL OR list_contains(t.tickers, $symbol))
      AND ($classes IS NULL OR list_contains($classes, t.catalyst))
    ORDER BY n.published_at DESC, n.source, n.id LIMIT $limit + 1
"""
_NEWEST_MODEL = "SELECT model FROM news_scores ORDER BY scored_at DESC, model LIMIT 1"


def recent_catalysts(reader: Reader, symbol: str | None, since: datetime | None, classes: list[Catalyst] | None,
                     limit: int) -> Rows:
    """Newest headlines first, capped at `limit`."""
    with reader.connection() as con:
        chosen = chosen_model(con)
        # No chosen model (none trained here): the one that scored most recently.
        model = chosen[0] if chosen else next(iter(con.execute(_NEWEST_MODEL).fetchall()), (None,))[0]
        params: dict[str, Any] = {
            "tagger": TAGGER, "model": model, "since": since,
            "symbol": symbol.upper() if symbol else None, "limit": limit,
            "classes": [c.value for c in classes] if classes else None,
        }
        rows = json_rows(con.sql(_CATALYSTS, params=params).pl())
    return Rows(rows=rows[:limit], count=min(len(rows), limit), truncated=len(rows) > limit)


def register(server: MCPServer, reader: Reader) -> None:
    @server.tool(name="recent_catalysts", description=(
        "Scored news catalysts, newest first: headline, tickers, class (earnings, fda, contract, m&a, partnership, "
        "dilution, other), sentiment label and score under the current model, published and knowable times (UTC)."))
    def _recent_catalysts(
        symbol: Symbol | None = None,
        since: AwareDatetime | None = None,
        classes: list[Catalyst] | None = None,
        limit: Annotated[int, Field(ge=1, le=100)] = 20,
    ) -> Rows:
        return recent_catalysts(reader, symbol, since, classes, limit)
