-- The operator API lists sagas by customer and by order (the payload
-- fields customer-id and order-id, pkg/saga's Filter.PayloadIDs): each
-- served by an index, newest first, instead of a scan of every saga.

-- +goose Up
CREATE INDEX sagastate_customer_idx ON sagastate ((payload->>'customer-id'), created_at DESC, id DESC);
CREATE INDEX sagastate_order_idx ON sagastate ((payload->>'order-id'), created_at DESC, id DESC);

-- +goose Down
DROP INDEX sagastate_order_idx;
DROP INDEX sagastate_customer_idx;
