-- +goose Up
CREATE TABLE payment (
    id            bigserial   PRIMARY KEY,
    saga_id       uuid        NOT NULL UNIQUE,
    order_id      bigint      NOT NULL,
    customer_id   bigint      NOT NULL,
    amount        bigint      NOT NULL CHECK (amount > 0), -- cents
    card_last4    text        NOT NULL,
    status        text        NOT NULL CHECK (status IN ('COMPLETED', 'FAILED', 'REFUNDED')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_order_idx ON payment (order_id);

-- +goose Down
DROP TABLE payment;
