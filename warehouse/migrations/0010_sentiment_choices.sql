-- Which sentiment model is current, kept as a history of choices: a trained model that beat
-- the current one, one trained with --make-current, or `tapeflow nlp use VERSION`. The latest
-- choice is current; the latest made before a New York day began is that day's model, so a
-- replay of any past day finds the model its sessions read headlines with.
CREATE TABLE sentiment_choices (                       -- one row per choice, never updated
    chosen_at     TIMESTAMPTZ NOT NULL,
    version       VARCHAR     NOT NULL,                  -- sentiment_models.version
    reason        VARCHAR     NOT NULL                   -- beat-current | make-current | use | latest-trained
);

-- Until now the latest trained model was current: each one counts as chosen when it was trained.
INSERT INTO sentiment_choices
SELECT trained_at, version, 'latest-trained' FROM sentiment_models WHERE base_model <> 'configured';
