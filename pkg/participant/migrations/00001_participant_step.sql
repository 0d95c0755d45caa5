-- pkg/participant's barrier: one row per saga and step a participant
-- serves, inserted by the first message of the saga for the step, REQUEST
-- or CANCEL. status:
--   DONE       the step took effect (Do); held until a CANCEL undoes it
--   REFUSED    the request was refused: nothing held
--   CANCELLED  a CANCEL came before any request: nothing done; a later request is refused
--   UNDONE     was DONE, then undone by a CANCEL (Undo): net nothing
-- record is what Do returned (JSON), handed to Undo and shown by Lookup.
-- Applied with its own version table (participant_db_version).

-- +goose Up
CREATE TABLE participant_step (
    step       text        NOT NULL,
    saga_id    uuid        NOT NULL,
    status     text        NOT NULL CHECK (status IN ('DONE', 'REFUSED', 'CANCELLED', 'UNDONE')),
    record     jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (step, saga_id)
);

-- +goose Down
DROP TABLE participant_step;
