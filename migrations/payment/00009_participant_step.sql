-- The payment step runs on pkg/participant, whose barrier table
-- (participant_step, created by its own migrations, applied before these)
-- now holds, per saga, what the step did; payment keeps the payments:
--   COMPLETED → DONE      charged (the payment row stays COMPLETED)
--   FAILED    → REFUSED   refused (the row stays FAILED)
--   REFUNDED  → UNDONE    charged and refunded (the row stays REFUNDED)
--   CANCELLED → CANCELLED a CANCEL before any request: the marker moves to
--                         the barrier and its payment row (amount 0) goes
-- So the money taken for a saga is its payment's amount if COMPLETED.

-- +goose Up
INSERT INTO participant_step (step, saga_id, status, record, created_at, updated_at)
SELECT 'payment', saga_id,
       CASE status WHEN 'COMPLETED' THEN 'DONE' WHEN 'FAILED' THEN 'REFUSED'
                   WHEN 'REFUNDED' THEN 'UNDONE' ELSE 'CANCELLED' END,
       CASE WHEN status = 'CANCELLED' THEN NULL
            ELSE jsonb_build_object('paymentId', id, 'orderId', order_id, 'amount', amount, 'cardLast4', card_last4) END,
       created_at, updated_at
FROM payment;
DELETE FROM payment WHERE status = 'CANCELLED';
ALTER TABLE payment
    DROP CONSTRAINT payment_status_check,
    DROP CONSTRAINT payment_amount_check;
ALTER TABLE payment
    ADD CONSTRAINT payment_status_check CHECK (status IN ('COMPLETED', 'FAILED', 'REFUNDED')),
    ADD CONSTRAINT payment_amount_check CHECK (amount > 0);

-- +goose Down
ALTER TABLE payment
    DROP CONSTRAINT payment_status_check,
    DROP CONSTRAINT payment_amount_check;
ALTER TABLE payment
    ADD CONSTRAINT payment_status_check CHECK (status IN ('COMPLETED', 'FAILED', 'REFUNDED', 'CANCELLED')),
    ADD CONSTRAINT payment_amount_check CHECK (CASE WHEN status = 'CANCELLED' THEN amount = 0 ELSE amount > 0 END);
INSERT INTO payment (saga_id, order_id, customer_id, amount, card_last4, status)
SELECT saga_id, 0, 0, 0, '', 'CANCELLED' FROM participant_step WHERE step = 'payment' AND status = 'CANCELLED';
DELETE FROM participant_step WHERE step = 'payment';
