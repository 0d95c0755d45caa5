-- +goose Up
CREATE TABLE stock (
    sku     text PRIMARY KEY,
    on_hand bigint NOT NULL CHECK (on_hand >= 0)
);

-- +goose Down
DROP TABLE stock;
