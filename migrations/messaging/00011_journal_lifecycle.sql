-- The consumed-message journal's entries are removed once no duplicate of
-- their message can arrive any more (outbox.PruneJournal, CONSUMED_RETENTION).
-- Entries are inserted in time order, so a BRIN index finds the old ones
-- at the cost of a few pages, where a btree would add a write to every
-- message consumed.

--
-- The outbox and the journal are queues: rows in at one end, out at the
-- other, all the time. Autovacuum visits them when 1 % of their rows are
-- dead instead of 20 %, so that the space of the rows removed is reused
-- soon and their size stays flat.

-- +goose Up
CREATE INDEX consumedmessage_consumed_at_idx ON consumedmessage USING brin (consumed_at) WITH (autosummarize = on);
ALTER TABLE consumedmessage SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE outboxevent SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02);

-- +goose Down
ALTER TABLE outboxevent RESET (autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor);
ALTER TABLE consumedmessage RESET (autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor);
DROP INDEX consumedmessage_consumed_at_idx;
