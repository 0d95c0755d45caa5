-- Idempotent order placement (POST /orders with an Idempotency-Key header,
-- the IETF httpapi draft): the key a client sent with the order it placed,
-- committed in the order's transaction. A retry of the request (after a
-- timeout, a lost connection) finds the key and gets the first order back
-- instead of placing a second one. Keys are removed after
-- IDEMPOTENCY_KEY_TTL (24h by default): a retry later than that places a
-- new order.

-- +goose Up
CREATE TABLE order_idempotency_key (
    key        text        PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255),
    order_id   bigint      NOT NULL REFERENCES purchaseorder (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_idempotency_key_created_idx ON order_idempotency_key (created_at);

-- +goose Down
DROP TABLE order_idempotency_key;
