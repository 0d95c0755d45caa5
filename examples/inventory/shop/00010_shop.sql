-- +goose Up
CREATE SEQUENCE shop_order_id;

-- +goose Down
DROP SEQUENCE shop_order_id;
