-- News and catalysts: headlines as seen, their tags (tickers, catalyst class) and sentiment,
-- each stored per model version so that re-scoring never overwrites what a past run knew.

ALTER TABLE news ADD COLUMN author VARCHAR;
ALTER TABLE news ADD COLUMN payload_hash VARCHAR;
ALTER TABLE news ADD COLUMN payload VARCHAR;               -- the vendor's item (JSON)

-- A vendor's edit replaces an item; the version it replaced is kept with when it stopped being current.
CREATE TABLE news_revisions AS SELECT *, NULL::TIMESTAMPTZ AS superseded_at FROM news WITH NO DATA;

-- Our reading of each version of an item (news_hash: the news row's payload_hash when read):
-- the tickers it is about (vendor tags plus extraction, and how each was found) and its
-- catalyst class, per tagger version. A vendor's edit is read as a new version; the reading
-- of the version it replaced stays, for replays of what was known before the edit.
CREATE TABLE news_tags (
    source        VARCHAR     NOT NULL,
    id            VARCHAR     NOT NULL,
    tagger        VARCHAR     NOT NULL,                   -- e.g. rules-v1
    tickers       VARCHAR[]   NOT NULL,
    evidence      JSON        NOT NULL,                   -- {ticker: [vendor | cashtag | exchange | name]}
    catalyst      VARCHAR     NOT NULL,                   -- earnings | fda | contract | m&a | partnership | dilution | other
    news_hash     VARCHAR     NOT NULL,
    tagged_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, id, tagger, news_hash)
);

-- Sentiment per item version and model version. `score` is the probability of `label`;
-- `polarity` = P(positive) - P(negative), in [-1, 1].
CREATE TABLE news_scores (
    source        VARCHAR     NOT NULL,
    id            VARCHAR     NOT NULL,
    model         VARCHAR     NOT NULL,                   -- the model version (sentiment_models.version)
    label         VARCHAR     NOT NULL,                   -- negative | neutral | positive
    score         DOUBLE      NOT NULL,
    polarity      DOUBLE      NOT NULL,
    news_hash     VARCHAR     NOT NULL,
    scored_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, id, model, news_hash)
);

-- Every sentiment model tapeflow trained or was pointed at: what it is, what it learnt
-- from, and how it did on data it never saw.
CREATE TABLE sentiment_models (
    version        VARCHAR     NOT NULL PRIMARY KEY,
    base_model     VARCHAR     NOT NULL,
    path           VARCHAR     NOT NULL,                  -- where the weights live
    training_data  JSON        NOT NULL,                  -- files, rows per label, sha256
    params         JSON        NOT NULL,                  -- epochs, batch size, learning rate, seed ...
    held_out       VARCHAR     NOT NULL,                  -- the evaluation split
    accuracy       DOUBLE,
    macro_f1       DOUBLE,
    report         JSON,                                  -- per-class precision / recall / F1, confusion matrix
    trained_at     TIMESTAMPTZ NOT NULL,
    train_seconds  DOUBLE
);
