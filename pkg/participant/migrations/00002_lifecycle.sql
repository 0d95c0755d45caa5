-- Step records are removed once no message of their saga can arrive any
-- more (Participant.Prune, STEP_RECORD_RETENTION): a BRIN index on the
-- time of a row's last message finds them at the cost of a few pages.

-- +goose Up
CREATE INDEX participant_step_updated_idx ON participant_step USING brin (updated_at) WITH (autosummarize = on);

-- +goose Down
DROP INDEX participant_step_updated_idx;
