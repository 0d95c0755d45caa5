-- pkg/saga's tables: the state of every saga (sagastate) and the history of
-- its transitions (sagastate_history). Applied with its own version table
-- (saga_db_version), before the orchestrating service's own migrations.
--
-- A database whose service created these tables itself (the order service
-- did, in its migrations 2 and 3, before pkg/saga shipped its schema) keeps
-- them: every statement below leaves what exists as it is, and brings a
-- table from before step deadlines up to date.

-- +goose Up
-- step_status maps a step name to STARTED, SUCCEEDED, FAILED, ABANDONED,
-- COMPENSATING or COMPENSATED; version is the optimistic lock every
-- transition checks and bumps; deadline is when the deadline sweeper acts
-- on the current step (NULL when nothing waits), attempt counts the
-- re-sends of the message it waits for, status_since is when the saga
-- entered its status.
CREATE TABLE IF NOT EXISTS sagastate (
    id           uuid        PRIMARY KEY,
    type         text        NOT NULL,
    payload      jsonb       NOT NULL,
    current_step text        NOT NULL DEFAULT '',
    step_status  jsonb       NOT NULL DEFAULT '{}',
    status       text        NOT NULL
                 CHECK (status IN ('STARTED', 'SUCCEEDED', 'ABORTING', 'ABORTED')),
    version      integer     NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'sagastate' AND column_name = 'deadline') THEN
        ALTER TABLE sagastate
            ADD COLUMN attempt      integer     NOT NULL DEFAULT 0,
            ADD COLUMN deadline     timestamptz,
            ADD COLUMN status_since timestamptz NOT NULL DEFAULT now();
        UPDATE sagastate SET status_since = updated_at;
        -- Sagas that were running had no deadline: give them one that has
        -- passed, so the sweeper sends what they wait for again
        -- (participants are idempotent) instead of letting them wait
        -- forever unseen.
        UPDATE sagastate SET deadline = now() WHERE status IN ('STARTED', 'ABORTING');
    END IF;
END
$$;
-- +goose StatementEnd
CREATE INDEX IF NOT EXISTS sagastate_status_idx ON sagastate (status, updated_at)
    WHERE status IN ('STARTED', 'ABORTING');
CREATE INDEX IF NOT EXISTS sagastate_deadline_idx ON sagastate (deadline) WHERE deadline IS NOT NULL;
CREATE INDEX IF NOT EXISTS sagastate_created_idx ON sagastate (created_at DESC, id DESC);
-- A change data capture connector on sagastate emits whole rows.
ALTER TABLE sagastate REPLICA IDENTITY FULL;

-- One row per step status change of every transition, written in the
-- transaction of the transition: what changed (step, from → to, the saga's
-- status, version, attempt and deadline after it) and why (cause: start,
-- reply with the message's event id/topic/type, retry or timeout of a
-- deadline, operator with who/what/why).
CREATE TABLE IF NOT EXISTS sagastate_history (
    id          bigserial   PRIMARY KEY,
    saga_id     uuid        NOT NULL REFERENCES sagastate (id),
    version     integer     NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    step        text        NOT NULL,
    from_status text        NOT NULL DEFAULT '',
    to_status   text        NOT NULL,
    saga_status text        NOT NULL,
    attempt     integer     NOT NULL,
    deadline    timestamptz,
    cause       text        NOT NULL CHECK (cause IN ('start', 'reply', 'retry', 'timeout', 'operator')),
    event_id    uuid,
    topic       text,
    event_type  text,
    actor       text,
    action      text,
    reason      text,
    CHECK (cause <> 'operator' OR (actor IS NOT NULL AND action IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS sagastate_history_saga_idx ON sagastate_history (saga_id, id);

-- +goose Down
DROP TABLE sagastate_history;
DROP TABLE sagastate;
