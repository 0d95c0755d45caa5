-- The consumed-message journal is keyed by (consumer, event id): two
-- consumers of one message in the same database (say, an audit consumer
-- beside the service's own) each apply it once. Keyed by the event id alone,
-- the second one would have skipped it as a duplicate.

-- +goose Up
ALTER TABLE consumedmessage DROP CONSTRAINT consumedmessage_pkey;
ALTER TABLE consumedmessage ADD PRIMARY KEY (consumer, event_id);

-- +goose Down
ALTER TABLE consumedmessage DROP CONSTRAINT consumedmessage_pkey;
ALTER TABLE consumedmessage ADD PRIMARY KEY (event_id);
