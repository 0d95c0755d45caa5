-- Applied to every service database (see migrations.go): the tables of the
-- transactional outbox, the consumed-message journal and the parked-message
-- store that pkg/outbox and pkg/consumer rely on.

-- +goose Up

-- Outbox: one row per message leaving the service, inserted in the same
-- transaction as the business change. Column names are Debezium's EventRouter
-- defaults; traceparent/tracestate carry the W3C trace context into Kafka
-- headers. Rows are only inserted, never updated; they are pruned after a
-- retention period (deletes are ignored by the EventRouter and by our relay).
CREATE TABLE outboxevent (
    id            uuid        PRIMARY KEY,
    aggregatetype text        NOT NULL,
    aggregateid   text        NOT NULL,
    type          text        NOT NULL,
    payload       jsonb       NOT NULL,
    traceparent   text,
    tracestate    text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outboxevent_created_at_idx ON outboxevent (created_at);

-- Consumed-message journal: the ids of the messages whose effect committed.
CREATE TABLE consumedmessage (
    event_id    uuid        PRIMARY KEY,
    consumer    text        NOT NULL,
    consumed_at timestamptz NOT NULL DEFAULT now()
);

-- Messages a consumer could not process (undecodable, unknown type, ...):
-- kept with the error so nothing is silently dropped and they can be replayed.
CREATE TABLE parkedmessage (
    id          bigserial   PRIMARY KEY,
    consumer    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    key         text        NOT NULL,
    value       bytea       NOT NULL,
    headers     jsonb       NOT NULL,
    error       text        NOT NULL,
    parked_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (consumer, topic, partition, "offset")
);

-- +goose Down
DROP TABLE parkedmessage;
DROP TABLE consumedmessage;
DROP TABLE outboxevent;
