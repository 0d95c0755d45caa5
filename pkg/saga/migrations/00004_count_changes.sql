-- The counts of sagas per type and status, kept without a shared row on
-- the hot path: a transition appends its change of the counts to
-- saga_count_change (insert only, so transitions committing at once never
-- wait for one another), and the sweeper folds the changes into saga_count
-- (Orchestrator.FoldCounts). The counts are saga_count plus the changes
-- not folded yet, read in one snapshot.
--
-- Before, the transitions updated saga_count rows themselves, spread over
-- 16 shards: a consumer's batch of replies held every shard's row until
-- its commit, and the orders placed meanwhile waited for it.

-- +goose Up
CREATE TABLE saga_count_change (
    type   text   NOT NULL,
    status text   NOT NULL,
    n      bigint NOT NULL
);
-- Emptied at every fold: vacuumed by row count, not by share.
ALTER TABLE saga_count_change SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
    autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 10000);
INSERT INTO saga_count_change (type, status, n) SELECT type, status, n FROM saga_count;
DROP TABLE saga_count;
CREATE TABLE saga_count (
    type   text   NOT NULL,
    status text   NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (type, status)
);

-- +goose Down
DROP TABLE saga_count;
CREATE TABLE saga_count (
    type   text     NOT NULL,
    status text     NOT NULL,
    shard  smallint NOT NULL,
    n      bigint   NOT NULL,
    PRIMARY KEY (type, status, shard)
);
INSERT INTO saga_count (type, status, shard, n) SELECT type, status, 0, sum(n) FROM saga_count_change GROUP BY type, status;
DROP TABLE saga_count_change;
