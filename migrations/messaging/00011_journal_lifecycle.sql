-- The consumed-message journal's entries are removed once no duplicate of
-- their message can arrive any more (outbox.PruneJournal, CONSUMED_RETENTION).
-- Entries are inserted in time order, so a BRIN index finds the old ones
-- at the cost of a few pages, where a btree would add a write to every
-- message consumed.

-- +goose Up
CREATE INDEX consumedmessage_consumed_at_idx ON consumedmessage USING brin (consumed_at) WITH (autosummarize = on);

-- +goose Down
DROP INDEX consumedmessage_consumed_at_idx;
