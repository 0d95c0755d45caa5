package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// RecordIdempotencyKey records key for order orderID in tx. It reports false,
// recording nothing, when the key is taken (by a transaction that committed
// first: a concurrent one is waited for).
func RecordIdempotencyKey(ctx context.Context, tx pgx.Tx, key string, orderID int64) (bool, error) {
	const q = `INSERT INTO order_idempotency_key (key, order_id) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`
	tag, err := tx.Exec(ctx, q, key, orderID)
	if err != nil {
		return false, fmt.Errorf("record idempotency key: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// OrderOfIdempotencyKey reads the order placed with key; ErrNotFound when no
// order was.
func OrderOfIdempotencyKey(ctx context.Context, q Querier, key string) (Order, error) {
	const sql = `SELECT ` + orderColumns + ` FROM purchaseorder
		WHERE id = (SELECT order_id FROM order_idempotency_key WHERE key = $1)`
	o, err := scanOrder(q.QueryRow(ctx, sql, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return Order{}, fmt.Errorf("order of idempotency key: %w", ErrNotFound)
	}
	if err != nil {
		return Order{}, fmt.Errorf("order of idempotency key: %w", err)
	}
	return o, nil
}

// Execer is what deletes need.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// PruneIdempotencyKeys deletes up to limit keys recorded before before and
// returns how many it deleted.
func PruneIdempotencyKeys(ctx context.Context, db Execer, before time.Time, limit int) (int64, error) {
	const q = `DELETE FROM order_idempotency_key WHERE key IN (
		SELECT key FROM order_idempotency_key WHERE created_at < $1 ORDER BY created_at LIMIT $2)`
	tag, err := db.Exec(ctx, q, before, limit)
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	return tag.RowsAffected(), nil
}
