// Package store is the payment service's SQL.
package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Payment statuses (payment.status): one row per saga that sent a payment
// message, whatever came first.
const (
	// StatusCompleted: amount charged to the card.
	StatusCompleted = "COMPLETED"
	// StatusFailed: the request was refused; nothing charged.
	StatusFailed = "FAILED"
	// StatusRefunded: was COMPLETED, then refunded by a CANCEL: net nothing.
	StatusRefunded = "REFUNDED"
	// StatusCancelled: a CANCEL came before any request; nothing charged
	// (amount 0), and a later request is refused.
	StatusCancelled = "CANCELLED"
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
// saga's payment status either way: p.Status when inserted, else the first
// one (a repeated request gets the first answer). The row is locked until
// tx ends, so messages of one saga handled concurrently are applied one
// after the other.
func Insert(ctx context.Context, tx pgx.Tx, p Payment) (status string, inserted bool, err error) {
	const q = `INSERT INTO payment (saga_id, order_id, customer_id, amount, card_last4, status)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (saga_id) DO NOTHING`
	tag, err := tx.Exec(ctx, q, p.SagaID, p.OrderID, p.CustomerID, p.Amount, p.CardLast4, p.Status)
	if err != nil {
		return "", false, fmt.Errorf("insert payment of saga %s: %w", p.SagaID, err)
	}
	if tag.RowsAffected() == 1 {
		return p.Status, true, nil
	}
	if err := tx.QueryRow(ctx, `SELECT status FROM payment WHERE saga_id = $1 FOR UPDATE`, p.SagaID).Scan(&status); err != nil {
		return "", false, fmt.Errorf("read payment of saga %s: %w", p.SagaID, err)
	}
	return status, false, nil
}

// Cancel undoes sagaID's payment: a COMPLETED payment becomes REFUNDED,
// once; a saga without a payment gets the CANCELLED marker p (amount 0),
// which refuses its request if that comes later; FAILED, REFUNDED and
// CANCELLED payments stay as they are. It returns the saga's payment status
// before the cancel, "" when it had none.
func Cancel(ctx context.Context, tx pgx.Tx, p Payment) (string, error) {
	p.Status, p.Amount = StatusCancelled, 0
	prev, inserted, err := Insert(ctx, tx, p)
	if err != nil || inserted {
		return "", err
	}
	if prev == StatusCompleted {
		const q = `UPDATE payment SET status = 'REFUNDED', updated_at = now() WHERE saga_id = $1`
		if _, err := tx.Exec(ctx, q, p.SagaID); err != nil {
			return "", fmt.Errorf("refund payment of saga %s: %w", p.SagaID, err)
		}
	}
	return prev, nil
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
