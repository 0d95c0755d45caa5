-- The saga tables were created here too, until pkg/saga shipped them with
-- its own migrations (applied before these).

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

-- +goose Down
DROP TABLE purchaseorder;
