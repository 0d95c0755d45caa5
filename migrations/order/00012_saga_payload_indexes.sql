-- The operator API lists sagas by customer and by order (the payload
-- fields customer-id and order-id, pkg/saga's Filter.PayloadIDs): each
-- served by an index, newest first, instead of a scan of every saga.

-- +goose Up
CREATE INDEX sagastate_customer_idx ON sagastate ((payload->>'customer-id'), created_at DESC, id DESC);
CREATE INDEX sagastate_order_idx ON sagastate ((payload->>'order-id'), created_at DESC, id DESC);
-- Orders go with their sagas (SAGA_RETENTION): vacuumed at 1 % dead rows.
ALTER TABLE purchaseorder SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02);

-- +goose Down
ALTER TABLE purchaseorder RESET (autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor);
DROP INDEX sagastate_order_idx;
DROP INDEX sagastate_customer_idx;
