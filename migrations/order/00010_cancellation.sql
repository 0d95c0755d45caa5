-- Cancelling an accepted order (POST /orders/{id}/cancel): the order goes
-- CANCELLING while its order-cancellation saga refunds the payment and
-- releases the credit, then CANCELLED. cancel_saga_id is that saga; one
-- per order at most.

-- +goose Up
ALTER TABLE purchaseorder
    DROP CONSTRAINT purchaseorder_status_check,
    ADD CONSTRAINT purchaseorder_status_check
        CHECK (status IN ('CREATED', 'ACCEPTED', 'REJECTED', 'CANCELLING', 'CANCELLED')),
    ADD COLUMN cancel_saga_id uuid UNIQUE,
    ADD CONSTRAINT purchaseorder_cancel_check
        CHECK ((cancel_saga_id IS NOT NULL) = (status IN ('CANCELLING', 'CANCELLED')));

-- +goose Down
ALTER TABLE purchaseorder
    DROP CONSTRAINT purchaseorder_cancel_check,
    DROP COLUMN cancel_saga_id,
    DROP CONSTRAINT purchaseorder_status_check,
    ADD CONSTRAINT purchaseorder_status_check CHECK (status IN ('CREATED', 'ACCEPTED', 'REJECTED'));
