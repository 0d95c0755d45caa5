// Package store is the payment service's SQL.
package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Payment statuses.
const (
	StatusCompleted = "COMPLETED"
	StatusFailed    = "FAILED"
	StatusRefunded  = "REFUNDED"
)

// Payment is one payment attempt of a saga. Amounts are integer cents; only
// the card's last four digits are kept.
type Payment struct {
	ID         int64
	SagaID     uuid.UUID
	OrderID    int64
	CustomerID int64
	Amount     int64
	CardLast4  string
	Status     string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Querier is what reads need.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Insert records p unless its saga already has a payment, and returns the
// saga's payment status either way: a repeated request gets the first answer.
func Insert(ctx context.Context, tx pgx.Tx, p Payment) (string, error) {
	const q = `INSERT INTO payment (saga_id, order_id, customer_id, amount, card_last4, status)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (saga_id) DO NOTHING`
	if _, err := tx.Exec(ctx, q, p.SagaID, p.OrderID, p.CustomerID, p.Amount, p.CardLast4, p.Status); err != nil {
		return "", fmt.Errorf("insert payment of saga %s: %w", p.SagaID, err)
	}
	var status string
	if err := tx.QueryRow(ctx, `SELECT status FROM payment WHERE saga_id = $1`, p.SagaID).Scan(&status); err != nil {
		return "", fmt.Errorf("read payment of saga %s: %w", p.SagaID, err)
	}
	return status, nil
}

// Refund marks sagaID's completed payment REFUNDED and reports whether there
// was one to refund (a refund happens once).
func Refund(ctx context.Context, tx pgx.Tx, sagaID uuid.UUID) (bool, error) {
	const q = `UPDATE payment SET status = 'REFUNDED', updated_at = now() WHERE saga_id = $1 AND status = 'COMPLETED'`
	tag, err := tx.Exec(ctx, q, sagaID)
	if err != nil {
		return false, fmt.Errorf("refund payment of saga %s: %w", sagaID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ByOrder lists the payments of an order, oldest first.
func ByOrder(ctx context.Context, q Querier, orderID int64) ([]Payment, error) {
	const sql = `SELECT id, saga_id, order_id, customer_id, amount, card_last4, status, created_at, updated_at
		FROM payment WHERE order_id = $1 ORDER BY id`
	rows, err := q.Query(ctx, sql, orderID)
	if err != nil {
		return nil, fmt.Errorf("list payments of order %d: %w", orderID, err)
	}
	ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Payment, error) {
		var p Payment
		err := r.Scan(&p.ID, &p.SagaID, &p.OrderID, &p.CustomerID, &p.Amount, &p.CardLast4, &p.Status, &p.CreatedAt, &p.UpdatedAt)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("list payments of order %d: %w", orderID, err)
	}
	return ps, nil
}
