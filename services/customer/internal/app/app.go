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

// OnCreditRequest answers a credit-approval REQUEST or CANCEL; the reply
// is written to the outbox in tx. Every message of a saga leaves (or finds)
// one credit_allocation row, which makes every order of delivery safe:
//
//   - REQUEST first: approve and allocate if the amount fits the open limit
//     (ALLOCATED, reply APPROVED), else reject (REJECTED, reply REJECTED; an
//     unknown customer is rejected too).
//   - REQUEST again: the first answer, nothing taken twice.
//   - CANCEL after an allocation: release it once (RELEASED); after a
//     rejection: nothing to release. Reply CANCELLED.
//   - CANCEL first (or instead of the REQUEST): nothing to release; the row
//     CANCELLED is the marker that refuses the REQUEST if it comes later.
//     Reply CANCELLED.
//   - REQUEST after a CANCEL (RELEASED or CANCELLED): refused, reply
//     REJECTED, nothing taken.
func (a *App) OnCreditRequest(ctx context.Context, tx pgx.Tx, m consumer.Message) error {
	sagaID, req, err := decode(m)
	if err != nil {
		return err
	}
	log := a.log.With("saga_id", sagaID, "order_id", req.OrderID, "event_id", m.ID)
	var status string
	switch req.Type {
	case "REQUEST":
		status, err = a.approve(ctx, tx, log, sagaID, req)
	default: // CANCEL
		err = a.cancel(ctx, tx, log, sagaID, req)
		status = StatusCancelled
	}
	if err != nil {
		return err
	}
	log.DebugContext(ctx, "credit request answered", "type", req.Type, "status", status)
	return outbox.Write(ctx, tx, saga.Reply("credit-approval", "CreditUpdated", sagaID, status))
}

// decode reads m: the saga id (key) and the fields this service needs of
// the body, whose type must be REQUEST or CANCEL. Every error is permanent:
// the message can never be applied.
func decode(m consumer.Message) (uuid.UUID, creditRequest, error) {
	sagaID, err := m.SagaID()
	if err != nil {
		return uuid.Nil, creditRequest{}, err
	}
	var req creditRequest
	if err := m.Decode(&req); err != nil {
		return uuid.Nil, creditRequest{}, err
	}
	if req.Type != "REQUEST" && req.Type != "CANCEL" {
		return uuid.Nil, creditRequest{}, consumer.Permanent(fmt.Errorf("unknown credit request type %q", req.Type))
	}
	return sagaID, req, nil
}

func (a *App) approve(ctx context.Context, tx pgx.Tx, log *slog.Logger, sagaID uuid.UUID, req creditRequest) (string, error) {
	prev, claimed, err := store.Claim(ctx, tx, sagaID, req.CustomerID, req.OrderID, store.AllocRejected)
	if err != nil {
		return "", err
	}
	if !claimed {
		switch prev {
		case store.AllocAllocated:
			return StatusApproved, nil // a repeated request gets the first answer
		case store.AllocRejected:
			return StatusRejected, nil
		default: // RELEASED, CANCELLED: the saga cancelled this step already
			log.WarnContext(ctx, "credit request after its cancellation refused", "allocation_status", prev)
			return StatusRejected, nil
		}
	}
	if req.PaymentDue <= 0 {
		return StatusRejected, nil
	}
	ok, err := store.Allocate(ctx, tx, sagaID, req.CustomerID, req.PaymentDue)
	if err != nil {
		return "", err
	}
	if !ok {
		return StatusRejected, nil
	}
	return StatusApproved, nil
}

func (a *App) cancel(ctx context.Context, tx pgx.Tx, log *slog.Logger, sagaID uuid.UUID, req creditRequest) error {
	prev, claimed, err := store.Claim(ctx, tx, sagaID, req.CustomerID, req.OrderID, store.AllocCancelled)
	if err != nil {
		return err
	}
	if claimed {
		log.InfoContext(ctx, "credit cancelled before its request: marker left, nothing released")
		return nil
	}
	if prev != store.AllocAllocated {
		log.InfoContext(ctx, "credit cancel: nothing to release", "allocation_status", prev)
		return nil
	}
	released, err := store.Release(ctx, tx, sagaID)
	if err != nil {
		return err
	}
	log.InfoContext(ctx, "credit released", "amount", released)
	return nil
}
