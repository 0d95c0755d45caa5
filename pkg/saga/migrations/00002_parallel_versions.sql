-- Steps that wait side by side, and definition versions.
--
-- waits maps every step waiting for a reply (STARTED or COMPENSATING) to
-- {"attempt", "deadline"}: several when steps run in parallel. The columns
-- attempt and deadline keep what they meant for a chain — the current
-- step's attempt, and the earliest deadline, which the sweeper's index
-- reads. A saga stored before this migration has an empty waits: its
-- current step waits, with its attempt and deadline (the engine reads it
-- so, saga.State.Upgrade).
--
-- definition_version is the version of its type's definition the saga
-- started with; every saga before versions ran version 1.

-- +goose Up
ALTER TABLE sagastate
    ADD COLUMN waits              jsonb   NOT NULL DEFAULT '{}',
    ADD COLUMN definition_version integer NOT NULL DEFAULT 1 CHECK (definition_version > 0);

-- +goose Down
ALTER TABLE sagastate DROP COLUMN waits, DROP COLUMN definition_version;
