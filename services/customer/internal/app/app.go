// Package app holds the customer service's use cases: answering the
// credit-approval step of the order-placement saga.
package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/outbox"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/services/customer/internal/store"
)

// RequestTopic is where the credit-approval step's requests arrive.
const RequestTopic = "credit-approval.request"

// Reply statuses on credit-approval.response.
const (
	StatusApproved  = "APPROVED"
	StatusRejected  = "REJECTED"
	StatusCancelled = "CANCELLED"
)

// creditRequest holds the fields of a request this service needs.
type creditRequest struct {
	OrderID    int64  `json:"order-id"`
	CustomerID int64  `json:"customer-id"`
	PaymentDue int64  `json:"payment-due"`
	Type       string `json:"type"`
}

// App is the customer service's application layer.
type App struct {
	log *slog.Logger
}

// New returns the application.
func New(log *slog.Logger) *App { return &App{log: log} }

// OnCreditRequest answers a credit-approval REQUEST (approve and allocate if
// the amount fits the open limit, else reject — an unknown customer is
// rejected too) or CANCEL (release what this saga allocated, once; nothing
// if it never allocated). The reply is written to the outbox in tx.
func (a *App) OnCreditRequest(ctx context.Context, tx pgx.Tx, m consumer.Message) error {
	sagaID, err := m.SagaID()
	if err != nil {
		return err
	}
	var req creditRequest
	if err := m.Decode(&req); err != nil {
		return err
	}
	log := a.log.With("saga_id", sagaID, "order_id", req.OrderID, "event_id", m.ID)
	var status string
	switch req.Type {
	case "REQUEST":
		status, err = a.approve(ctx, tx, sagaID, req)
	case "CANCEL":
		released, err := store.Release(ctx, tx, sagaID)
		if err != nil {
			return err
		}
		status = StatusCancelled
		log.InfoContext(ctx, "credit released", "amount", released)
	default:
		return consumer.Permanent(fmt.Errorf("unknown credit request type %q", req.Type))
	}
	if err != nil {
		return err
	}
	log.InfoContext(ctx, "credit request answered", "type", req.Type, "status", status)
	return outbox.Write(ctx, tx, saga.Reply("credit-approval", "CreditUpdated", sagaID, status))
}

func (a *App) approve(ctx context.Context, tx pgx.Tx, sagaID uuid.UUID, req creditRequest) (string, error) {
	// A repeated request (same saga, new message) gets the first answer.
	prev, err := store.AllocationStatus(ctx, tx, sagaID)
	if err != nil {
		return "", err
	}
	if prev != "" {
		return StatusApproved, nil
	}
	if req.PaymentDue <= 0 {
		return StatusRejected, nil
	}
	ok, err := store.Allocate(ctx, tx, sagaID, req.CustomerID, req.OrderID, req.PaymentDue)
	if err != nil {
		return "", err
	}
	if !ok {
		return StatusRejected, nil
	}
	return StatusApproved, nil
}
