// Package store is the customer service's SQL: customers' open credit and
// the per-saga credit allocations.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// ErrNotFound reports an unknown customer.
var ErrNotFound = errors.New("customer not found")

// Customer is a customer's credit account. Amounts are integer cents.
type Customer struct {
	ID        int64
	OpenLimit int64
	Version   int
}

// Querier is what reads need.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// GetCustomer reads customer id.
func GetCustomer(ctx context.Context, q Querier, id int64) (Customer, error) {
	const sql = `SELECT id, open_limit, version FROM customer WHERE id = $1`
	var c Customer
	err := q.QueryRow(ctx, sql, id).Scan(&c.ID, &c.OpenLimit, &c.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return Customer{}, fmt.Errorf("get customer %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Customer{}, fmt.Errorf("get customer %d: %w", id, err)
	}
	return c, nil
}

// Allocation statuses (credit_allocation.status): one row per saga that
// sent a credit-approval message, whatever came first.
const (
	// AllocAllocated: amount taken from the customer's open limit and held
	// for the saga.
	AllocAllocated = "ALLOCATED"
	// AllocReleased: was ALLOCATED, then given back by a CANCEL: net nothing.
	AllocReleased = "RELEASED"
	// AllocRejected: the request was refused; nothing taken (amount 0).
	AllocRejected = "REJECTED"
	// AllocCancelled: a CANCEL came before any request; nothing taken
	// (amount 0), and a later request is refused.
	AllocCancelled = "CANCELLED"
)

// Claim inserts sagaID's allocation row with status and amount 0 unless the
// saga has one, and returns the saga's status: status itself when the row
// was inserted (claimed), else the existing row's. Either way the row is
// locked until tx ends, so messages of one saga handled concurrently are
// applied one after the other.
func Claim(ctx context.Context, tx pgx.Tx, sagaID uuid.UUID, customerID, orderID int64, status string) (string, bool, error) {
	const insert = `INSERT INTO credit_allocation (saga_id, customer_id, order_id, amount, status)
		VALUES ($1, $2, $3, 0, $4) ON CONFLICT (saga_id) DO NOTHING`
	tag, err := tx.Exec(ctx, insert, sagaID, customerID, orderID, status)
	if err != nil {
		return "", false, fmt.Errorf("claim allocation of saga %s: %w", sagaID, err)
	}
	if tag.RowsAffected() == 1 {
		return status, true, nil
	}
	const lock = `SELECT status FROM credit_allocation WHERE saga_id = $1 FOR UPDATE`
	var existing string
	if err := tx.QueryRow(ctx, lock, sagaID).Scan(&existing); err != nil {
		return "", false, fmt.Errorf("read allocation of saga %s: %w", sagaID, err)
	}
	return existing, false, nil
}

// Allocate takes amount from customer id's open limit for sagaID, whose row
// Claim inserted in tx, and marks it ALLOCATED. It reports false, changing
// nothing, when the customer does not exist or its open limit is smaller
// than amount. The conditional UPDATE makes concurrent allocations safe:
// the limit never goes below zero.
func Allocate(ctx context.Context, tx pgx.Tx, sagaID uuid.UUID, id, amount int64) (bool, error) {
	// One statement: take from the limit and, only if that took, record it.
	const q = `WITH take AS (
			UPDATE customer SET open_limit = open_limit - $2, version = version + 1
			WHERE id = $1 AND open_limit >= $2 RETURNING id)
		UPDATE credit_allocation SET status = 'ALLOCATED', amount = $2, updated_at = now()
		WHERE saga_id = $3 AND EXISTS (SELECT 1 FROM take)`
	tag, err := tx.Exec(ctx, q, id, amount, sagaID)
	if err != nil {
		return false, fmt.Errorf("allocate %d for customer %d, saga %s: %w", amount, id, sagaID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Release gives back what sagaID allocated, once: the allocation moves from
// ALLOCATED to RELEASED and its amount returns to the open limit. It returns
// the amount released, 0 when there was nothing (left) to release.
func Release(ctx context.Context, tx pgx.Tx, sagaID uuid.UUID) (int64, error) {
	// One statement: mark the allocation released and give its amount back.
	const q = `WITH mark AS (
			UPDATE credit_allocation SET status = 'RELEASED', updated_at = now()
			WHERE saga_id = $1 AND status = 'ALLOCATED' RETURNING customer_id, amount)
		UPDATE customer c SET open_limit = c.open_limit + mark.amount, version = c.version + 1
		FROM mark WHERE c.id = mark.customer_id RETURNING mark.amount`
	var amount int64
	err := tx.QueryRow(ctx, q, sagaID).Scan(&amount)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("release allocation of saga %s: %w", sagaID, err)
	}
	return amount, nil
}

// Allocation is a saga's credit_allocation row.
type Allocation struct {
	SagaID     uuid.UUID
	CustomerID int64
	OrderID    int64
	Amount     int64
	Status     string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// ErrNoAllocation reports a saga that sent the customer service nothing.
var ErrNoAllocation = errors.New("no credit allocation for this saga")

// GetAllocation reads the allocation of saga sagaID.
func GetAllocation(ctx context.Context, q Querier, sagaID uuid.UUID) (Allocation, error) {
	const sql = `SELECT saga_id, customer_id, order_id, amount, status, created_at, updated_at
		FROM credit_allocation WHERE saga_id = $1`
	var a Allocation
	err := q.QueryRow(ctx, sql, sagaID).Scan(&a.SagaID, &a.CustomerID, &a.OrderID, &a.Amount, &a.Status, &a.CreatedAt, &a.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Allocation{}, fmt.Errorf("get allocation of saga %s: %w", sagaID, ErrNoAllocation)
	}
	if err != nil {
		return Allocation{}, fmt.Errorf("get allocation of saga %s: %w", sagaID, err)
	}
	return a, nil
}
