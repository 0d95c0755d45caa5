// Package store is the order service's SQL for purchase orders. The saga
// state has its own store in pkg/saga.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// ErrNotFound reports an unknown order id.
var ErrNotFound = errors.New("order not found")

// Order statuses.
const (
	StatusCreated    = "CREATED"
	StatusAccepted   = "ACCEPTED"
	StatusRejected   = "REJECTED"
	StatusCancelling = "CANCELLING"
	StatusCancelled  = "CANCELLED"
)

// Order is a purchase order row. Amounts are integer cents. The card number
// is never stored in clear: only sealed (pkg/card, for the saga id) and its
// last four characters.
type Order struct {
	ID         int64
	CustomerID int64
	ItemID     int64
	Quantity   int
	PaymentDue int64
	// CardSealed is the card number sealed with pkg/card for SagaID; empty
	// for orders whose saga had ended when the numbers were sealed
	// (migration 00006).
	CardSealed string
	CardLast4  string
	Status     string
	SagaID     uuid.UUID
	// CancelSagaID is the order's order-cancellation saga, uuid.Nil unless
	// it is CANCELLING or CANCELLED.
	CancelSagaID uuid.UUID
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Querier is what reads need.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// InsertOrder stores o (status CREATED) and returns its id and creation
// time (the transaction's clock).
func InsertOrder(ctx context.Context, tx pgx.Tx, o Order) (id int64, createdAt time.Time, err error) {
	const q = `INSERT INTO purchaseorder (customer_id, item_id, quantity, payment_due, credit_card_sealed, credit_card_last4, status, saga_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id, created_at`
	if err := tx.QueryRow(ctx, q, o.CustomerID, o.ItemID, o.Quantity, o.PaymentDue, o.CardSealed, o.CardLast4, StatusCreated, o.SagaID).Scan(&id, &createdAt); err != nil {
		return 0, time.Time{}, fmt.Errorf("insert order: %w", err)
	}
	return id, createdAt, nil
}

const orderColumns = `id, customer_id, item_id, quantity, payment_due, coalesce(credit_card_sealed, ''), credit_card_last4,
	status, saga_id, cancel_saga_id, created_at, updated_at`

func scanOrder(row pgx.Row) (Order, error) {
	var (
		o      Order
		cancel *uuid.UUID
	)
	err := row.Scan(&o.ID, &o.CustomerID, &o.ItemID, &o.Quantity, &o.PaymentDue, &o.CardSealed, &o.CardLast4,
		&o.Status, &o.SagaID, &cancel, &o.CreatedAt, &o.UpdatedAt)
	if cancel != nil {
		o.CancelSagaID = *cancel
	}
	return o, err
}

// GetOrder reads order id.
func GetOrder(ctx context.Context, q Querier, id int64) (Order, error) {
	const sql = `SELECT ` + orderColumns + ` FROM purchaseorder WHERE id = $1`
	o, err := scanOrder(q.QueryRow(ctx, sql, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Order{}, fmt.Errorf("get order %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Order{}, fmt.Errorf("get order %d: %w", id, err)
	}
	return o, nil
}

// LockOrder reads order id and locks it until tx ends.
func LockOrder(ctx context.Context, tx pgx.Tx, id int64) (Order, error) {
	const sql = `SELECT ` + orderColumns + ` FROM purchaseorder WHERE id = $1 FOR UPDATE`
	o, err := scanOrder(tx.QueryRow(ctx, sql, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Order{}, fmt.Errorf("lock order %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Order{}, fmt.Errorf("lock order %d: %w", id, err)
	}
	return o, nil
}

// StartCancel moves ACCEPTED order id to CANCELLING under its
// cancellation saga sagaID.
func StartCancel(ctx context.Context, tx pgx.Tx, id int64, sagaID uuid.UUID) error {
	const q = `UPDATE purchaseorder SET status = 'CANCELLING', cancel_saga_id = $2, updated_at = now()
		WHERE id = $1 AND status = 'ACCEPTED'`
	tag, err := tx.Exec(ctx, q, id, sagaID)
	if err == nil && tag.RowsAffected() != 1 {
		err = errors.New("not ACCEPTED")
	}
	if err != nil {
		return fmt.Errorf("cancel order %d: %w", id, err)
	}
	return nil
}

// SettleCancel moves the order of cancellation saga sagaID from CANCELLING
// to CANCELLED (a no-op once it is).
func SettleCancel(ctx context.Context, tx pgx.Tx, sagaID uuid.UUID) error {
	const q = `UPDATE purchaseorder SET status = 'CANCELLED', updated_at = now() WHERE cancel_saga_id = $1 AND status = 'CANCELLING'`
	if _, err := tx.Exec(ctx, q, sagaID); err != nil {
		return fmt.Errorf("settle the cancellation of saga %s: %w", sagaID, err)
	}
	return nil
}

// OrderOfSaga reads the order whose saga — its placement or its
// cancellation — is sagaID.
func OrderOfSaga(ctx context.Context, q Querier, sagaID uuid.UUID) (Order, error) {
	const sql = `SELECT ` + orderColumns + ` FROM purchaseorder WHERE saga_id = $1
		UNION ALL SELECT ` + orderColumns + ` FROM purchaseorder WHERE cancel_saga_id = $1`
	o, err := scanOrder(q.QueryRow(ctx, sql, sagaID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Order{}, fmt.Errorf("get order of saga %s: %w", sagaID, ErrNotFound)
	}
	if err != nil {
		return Order{}, fmt.Errorf("get order of saga %s: %w", sagaID, err)
	}
	return o, nil
}

// SettleSaga moves the order of saga sagaID from CREATED to status. It is a
// no-op for an order that already left CREATED, so a repeated saga outcome
// is harmless.
func SettleSaga(ctx context.Context, tx pgx.Tx, sagaID uuid.UUID, status string) error {
	const q = `UPDATE purchaseorder SET status = $2, updated_at = now() WHERE saga_id = $1 AND status = 'CREATED'`
	if _, err := tx.Exec(ctx, q, sagaID, status); err != nil {
		return fmt.Errorf("settle order of saga %s as %s: %w", sagaID, status, err)
	}
	return nil
}

// ForgetOrders removes, within tx, the orders whose sagas ids are going
// (saga.Config.OnPrune): an order goes with its placement saga unless its
// cancellation still runs, or with its cancellation saga.
func ForgetOrders(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) error {
	const q = `DELETE FROM purchaseorder
		WHERE (saga_id = ANY($1) AND (cancel_saga_id IS NULL OR status = 'CANCELLED')) OR cancel_saga_id = ANY($1)`
	if _, err := tx.Exec(ctx, q, ids); err != nil {
		return fmt.Errorf("remove the orders of ended sagas: %w", err)
	}
	return nil
}
