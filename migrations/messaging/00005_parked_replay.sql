-- Parked messages can be replayed by an operator (each service's
-- /admin/parked): a replay goes through the consumer's journal and handler,
-- and the row keeps who replayed it, why and with what outcome. A replay
-- that fails again leaves the message PARKED with the new error.

-- +goose Up
ALTER TABLE parkedmessage
    ADD COLUMN status         text        NOT NULL DEFAULT 'PARKED' CHECK (status IN ('PARKED', 'REPLAYED')),
    ADD COLUMN replay_attempts integer    NOT NULL DEFAULT 0,
    ADD COLUMN replayed_at    timestamptz,
    ADD COLUMN replayed_by    text,
    ADD COLUMN replay_reason  text,
    ADD COLUMN replay_outcome text        CHECK (replay_outcome IN ('applied', 'duplicate'));
CREATE INDEX parkedmessage_parked_idx ON parkedmessage (id) WHERE status = 'PARKED';

-- +goose Down
DROP INDEX parkedmessage_parked_idx;
ALTER TABLE parkedmessage
    DROP COLUMN status, DROP COLUMN replay_attempts, DROP COLUMN replayed_at,
    DROP COLUMN replayed_by, DROP COLUMN replay_reason, DROP COLUMN replay_outcome;
