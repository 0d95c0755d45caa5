-- Every credit-approval message of a saga leaves a row, so that any order
-- of delivery is safe (the "barrier" cases: a CANCEL before or instead of
-- its REQUEST, a REQUEST after its CANCEL, a duplicate of either).
-- credit_allocation.status, and what it means for money:
--   ALLOCATED  amount (> 0) taken from the customer's open limit, held for the saga
--   RELEASED   was ALLOCATED, then given back by a CANCEL: net nothing
--   REJECTED   the REQUEST was refused (limit, unknown customer, bad amount): nothing taken, amount 0
--   CANCELLED  a CANCEL came before any REQUEST: nothing taken, amount 0; a later REQUEST is refused
-- So, per customer: initial limit − open limit = sum(amount) of its ALLOCATED rows.
-- A REJECTED row may name a customer that does not exist: the foreign key goes.

-- +goose Up
ALTER TABLE credit_allocation
    DROP CONSTRAINT credit_allocation_customer_id_fkey,
    DROP CONSTRAINT credit_allocation_status_check,
    DROP CONSTRAINT credit_allocation_amount_check;
ALTER TABLE credit_allocation
    ADD CONSTRAINT credit_allocation_status_check
        CHECK (status IN ('ALLOCATED', 'RELEASED', 'REJECTED', 'CANCELLED')),
    ADD CONSTRAINT credit_allocation_amount_check
        CHECK (CASE WHEN status IN ('ALLOCATED', 'RELEASED') THEN amount > 0 ELSE amount = 0 END);

-- +goose Down
DELETE FROM credit_allocation WHERE status IN ('REJECTED', 'CANCELLED');
ALTER TABLE credit_allocation
    DROP CONSTRAINT credit_allocation_status_check,
    DROP CONSTRAINT credit_allocation_amount_check;
ALTER TABLE credit_allocation
    ADD CONSTRAINT credit_allocation_status_check CHECK (status IN ('ALLOCATED', 'RELEASED')),
    ADD CONSTRAINT credit_allocation_amount_check CHECK (amount > 0),
    ADD CONSTRAINT credit_allocation_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customer (id);
