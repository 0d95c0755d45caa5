-- Step records are removed once no message of their saga can arrive any
-- more (Participant.Prune, STEP_RECORD_RETENTION): a BRIN index on the
-- time of a row's last message finds them at the cost of a few pages.

-- Vacuumed at 1 % dead rows instead of 20 %, so that the space of the
-- records removed is reused soon.

-- +goose Up
CREATE INDEX participant_step_updated_idx ON participant_step USING brin (updated_at) WITH (autosummarize = on);
ALTER TABLE participant_step SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02);

-- +goose Down
ALTER TABLE participant_step RESET (autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor);
DROP INDEX participant_step_updated_idx;
