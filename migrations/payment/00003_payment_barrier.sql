-- Every payment message of a saga leaves a row, so that any order of
-- delivery is safe (the "barrier" cases: a CANCEL before or instead of its
-- REQUEST, a REQUEST after its CANCEL, a duplicate of either).
-- payment.status, and what it means for money:
--   COMPLETED  amount (> 0) charged to the card
--   FAILED     the REQUEST was refused (card …9999): nothing charged
--   REFUNDED   was COMPLETED, then refunded by a CANCEL: net nothing
--   CANCELLED  a CANCEL came before any REQUEST: nothing charged, amount 0; a later REQUEST is refused
-- So the money taken for a saga is its amount if COMPLETED, else nothing.

-- +goose Up
ALTER TABLE payment
    DROP CONSTRAINT payment_status_check,
    DROP CONSTRAINT payment_amount_check;
ALTER TABLE payment
    ADD CONSTRAINT payment_status_check CHECK (status IN ('COMPLETED', 'FAILED', 'REFUNDED', 'CANCELLED')),
    ADD CONSTRAINT payment_amount_check CHECK (CASE WHEN status = 'CANCELLED' THEN amount = 0 ELSE amount > 0 END);

-- +goose Down
DELETE FROM payment WHERE status = 'CANCELLED';
ALTER TABLE payment
    DROP CONSTRAINT payment_status_check,
    DROP CONSTRAINT payment_amount_check;
ALTER TABLE payment
    ADD CONSTRAINT payment_status_check CHECK (status IN ('COMPLETED', 'FAILED', 'REFUNDED')),
    ADD CONSTRAINT payment_amount_check CHECK (amount > 0);
