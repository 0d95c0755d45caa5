-- Step deadlines and the saga history (pkg/saga).
--
-- sagastate gains what the deadline sweeper needs: attempt (re-sends of the
-- message the current step waits for), deadline (when the sweeper acts on
-- it; NULL when nothing waits) and status_since (when the saga entered its
-- status: an ABORTING saga older than a bound is stuck). step_status values
-- may now also be ABANDONED: a step the saga stopped waiting for (deadline
-- and retries passed, or an operator aborted), compensated last.

-- +goose Up
ALTER TABLE sagastate
    ADD COLUMN attempt      integer     NOT NULL DEFAULT 0,
    ADD COLUMN deadline     timestamptz,
    ADD COLUMN status_since timestamptz NOT NULL DEFAULT now();
UPDATE sagastate SET status_since = updated_at;
-- Sagas already running had no deadline: give them one that has passed, so
-- the sweeper sends their pending message again (participants are
-- idempotent) instead of letting them wait forever unseen.
UPDATE sagastate SET deadline = now() WHERE status IN ('STARTED', 'ABORTING');
CREATE INDEX sagastate_deadline_idx ON sagastate (deadline) WHERE deadline IS NOT NULL;
CREATE INDEX sagastate_created_idx ON sagastate (created_at DESC, id DESC);

-- One row per step status change of every transition, written in the
-- transaction of the transition: what changed (step, from → to, the saga's
-- status, version, attempt and deadline after it) and why (cause: start,
-- reply with the message's event id/topic/type, retry or timeout of a
-- deadline, operator with who/what/why).
CREATE TABLE sagastate_history (
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
CREATE INDEX sagastate_history_saga_idx ON sagastate_history (saga_id, id);

-- +goose Down
DROP TABLE sagastate_history;
DROP INDEX sagastate_created_idx;
DROP INDEX sagastate_deadline_idx;
ALTER TABLE sagastate DROP COLUMN status_since, DROP COLUMN deadline, DROP COLUMN attempt;
