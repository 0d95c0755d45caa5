-- Card numbers are no longer kept in clear (README, "Card numbers"): the
-- order service stores the number sealed (pkg/card: AES-256-GCM, bound to
-- the saga id, with the id of its key) and its last four characters, and
-- the saga payload carries only the sealed number, under
-- "credit-card-sealed".
--
-- What was stored in clear before, and what happens to it:
--   purchaseorder  credit_card_last4 is taken from the number. The number
--                  stays in credit_card_no only while its saga may still
--                  send a payment request (saga STARTED): the order service
--                  seals those at its next start, when it has the key
--                  (app.SealLegacyCards), and clears the column. Every
--                  other order loses the number now.
--   sagastate      "credit-card-no" leaves the payload of every saga that
--                  is not STARTED now, of the others when they are sealed.
--   outboxevent    rows with a number in clear are deleted: each was
--                  published already or is still in the WAL, which is what
--                  the relay and Debezium read (deletes are not published).
-- No row may store a number in clear again: the CHECK (NOT VALID) holds for
-- every row written from now on. Once no order has credit_card_no, a later
-- migration can drop the column.

-- +goose Up
ALTER TABLE purchaseorder
    ADD COLUMN credit_card_sealed text,
    ADD COLUMN credit_card_last4  text;
UPDATE purchaseorder SET credit_card_last4 = right(regexp_replace(credit_card_no, '[ -]', '', 'g'), 4);
ALTER TABLE purchaseorder
    ALTER COLUMN credit_card_last4 SET NOT NULL,
    ALTER COLUMN credit_card_no DROP NOT NULL;
UPDATE sagastate SET payload = payload - 'credit-card-no'
    WHERE status <> 'STARTED' AND payload ? 'credit-card-no';
UPDATE purchaseorder p SET credit_card_no = NULL
    WHERE NOT EXISTS (SELECT 1 FROM sagastate s WHERE s.id = p.saga_id AND s.status = 'STARTED');
DELETE FROM outboxevent WHERE payload ? 'credit-card-no';
ALTER TABLE purchaseorder
    ADD CONSTRAINT purchaseorder_card_not_in_clear CHECK (credit_card_no IS NULL) NOT VALID,
    ADD CONSTRAINT purchaseorder_card_sealed_check CHECK (credit_card_sealed LIKE 'v1.%');

-- +goose Down
-- The numbers do not come back: version 5's schema again, with the last
-- four characters behind asterisks where the number is gone.
ALTER TABLE purchaseorder
    DROP CONSTRAINT purchaseorder_card_sealed_check,
    DROP CONSTRAINT purchaseorder_card_not_in_clear;
UPDATE purchaseorder SET credit_card_no = '****' || credit_card_last4 WHERE credit_card_no IS NULL;
ALTER TABLE purchaseorder
    ALTER COLUMN credit_card_no SET NOT NULL,
    DROP COLUMN credit_card_last4,
    DROP COLUMN credit_card_sealed;
