-- +goose Up
CREATE TABLE customer (
    id         bigint  PRIMARY KEY,
    open_limit bigint  NOT NULL CHECK (open_limit >= 0), -- cents
    version    integer NOT NULL DEFAULT 0
);

-- One row per saga that asked for credit: what was allocated, so that a
-- CANCEL releases exactly that amount, once.
CREATE TABLE credit_allocation (
    saga_id     uuid        PRIMARY KEY,
    customer_id bigint      NOT NULL REFERENCES customer (id),
    order_id    bigint      NOT NULL,
    amount      bigint      NOT NULL CHECK (amount > 0),
    status      text        NOT NULL CHECK (status IN ('ALLOCATED', 'RELEASED')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO customer (id, open_limit) VALUES (456, 50000);

-- +goose Down
DROP TABLE credit_allocation;
DROP TABLE customer;
