-- The credit-approval step runs on pkg/participant, whose barrier table
-- (participant_step, created by its own migrations, applied before these)
-- holds what credit_allocation held: one row per saga that sent the step a
-- message, and what it did.
--   ALLOCATED → DONE      the amount taken from the customer's open limit (record.amount)
--   RELEASED  → UNDONE    taken and given back
--   REJECTED  → REFUSED   nothing taken (record.amount 0)
--   CANCELLED → CANCELLED a CANCEL before any request: nothing taken, a later request refused
-- So per customer: initial limit − open limit = the sum of record.amount of
-- its DONE rows.

-- +goose Up
INSERT INTO participant_step (step, saga_id, status, record, created_at, updated_at)
SELECT 'credit-approval', saga_id,
       CASE status WHEN 'ALLOCATED' THEN 'DONE' WHEN 'RELEASED' THEN 'UNDONE'
                   WHEN 'REJECTED' THEN 'REFUSED' ELSE 'CANCELLED' END,
       CASE WHEN status = 'CANCELLED' THEN NULL
            ELSE jsonb_build_object('customerId', customer_id, 'orderId', order_id, 'amount', amount) END,
       created_at, updated_at
FROM credit_allocation;
DROP TABLE credit_allocation;

-- +goose Down
CREATE TABLE credit_allocation (
    saga_id     uuid        PRIMARY KEY,
    customer_id bigint      NOT NULL,
    order_id    bigint      NOT NULL,
    amount      bigint      NOT NULL,
    status      text        NOT NULL CHECK (status IN ('ALLOCATED', 'RELEASED', 'REJECTED', 'CANCELLED')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT credit_allocation_amount_check
        CHECK (CASE WHEN status IN ('ALLOCATED', 'RELEASED') THEN amount > 0 ELSE amount = 0 END)
);
INSERT INTO credit_allocation (saga_id, customer_id, order_id, amount, status, created_at, updated_at)
SELECT saga_id, coalesce((record->>'customerId')::bigint, 0), coalesce((record->>'orderId')::bigint, 0),
       CASE WHEN status IN ('DONE', 'UNDONE') THEN (record->>'amount')::bigint ELSE 0 END,
       CASE status WHEN 'DONE' THEN 'ALLOCATED' WHEN 'UNDONE' THEN 'RELEASED'
                   WHEN 'REFUSED' THEN 'REJECTED' ELSE 'CANCELLED' END,
       created_at, updated_at
FROM participant_step WHERE step = 'credit-approval';
DELETE FROM participant_step WHERE step = 'credit-approval';
