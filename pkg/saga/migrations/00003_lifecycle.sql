-- Reads that do not scan history, and ended sagas removed after their
-- retention (Orchestrator.Prune).
--
-- saga_count holds the number of sagas per type and status, kept by every
-- transition in its transaction (and by Prune when it removes sagas), over
-- a few rows per type and status (shard: by saga id) so that transitions
-- rarely wait for one another: the stats read it instead of counting
-- sagastate.
--
-- The partial indexes hold ended sagas only, so a saga enters them once,
-- at its last transition: the stats' window of ended sagas (status_since)
-- and the list by final status, newest first. The type index serves the
-- list by type.

-- +goose Up
CREATE TABLE saga_count (
    type   text     NOT NULL,
    status text     NOT NULL,
    shard  smallint NOT NULL,
    n      bigint   NOT NULL,
    PRIMARY KEY (type, status, shard)
);
INSERT INTO saga_count (type, status, shard, n)
    SELECT type, status, 0, count(*) FROM sagastate GROUP BY type, status;

CREATE INDEX sagastate_ended_idx ON sagastate (status_since) WHERE status IN ('SUCCEEDED', 'ABORTED');
CREATE INDEX sagastate_final_idx ON sagastate (status, created_at DESC, id DESC) WHERE status IN ('SUCCEEDED', 'ABORTED');
CREATE INDEX sagastate_type_idx ON sagastate (type, created_at DESC, id DESC);

-- Rows removed all the time once sagas reach their retention: vacuumed at
-- 1 % dead rows instead of 20 %, so that their space is reused soon.
ALTER TABLE sagastate SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE sagastate_history SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02);

-- +goose Down
ALTER TABLE sagastate_history RESET (autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor);
ALTER TABLE sagastate RESET (autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor);
DROP INDEX sagastate_type_idx;
DROP INDEX sagastate_final_idx;
DROP INDEX sagastate_ended_idx;
DROP TABLE saga_count;
