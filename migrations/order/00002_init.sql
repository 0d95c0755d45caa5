-- +goose Up
CREATE TABLE purchaseorder (
    id             bigserial   PRIMARY KEY,
    customer_id    bigint      NOT NULL,
    item_id        bigint      NOT NULL,
    quantity       integer     NOT NULL CHECK (quantity > 0),
    payment_due    bigint      NOT NULL CHECK (payment_due > 0), -- cents
    credit_card_no text        NOT NULL,
    status         text        NOT NULL DEFAULT 'CREATED'
                   CHECK (status IN ('CREATED', 'ACCEPTED', 'REJECTED')),
    saga_id        uuid        NOT NULL UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- The saga log of the orchestrator (pkg/saga). step_status maps step name to
-- STARTED|SUCCEEDED|FAILED|COMPENSATING|COMPENSATED; version is the
-- optimistic lock every transition checks and bumps.
CREATE TABLE sagastate (
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
CREATE INDEX sagastate_status_idx ON sagastate (status, updated_at)
    WHERE status IN ('STARTED', 'ABORTING');
-- Debezium's sagastate connector emits whole rows.
ALTER TABLE sagastate REPLICA IDENTITY FULL;

-- +goose Down
DROP TABLE sagastate;
DROP TABLE purchaseorder;
