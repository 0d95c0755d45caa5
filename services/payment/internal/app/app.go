// Package app holds the payment service's use cases: answering the payment
// step of the order-placement saga.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/outbox"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/services/payment/internal/store"
)

// RequestTopic is where the payment step's requests arrive.
const RequestTopic = "payment.request"

// Reply statuses on payment.response.
const (
	StatusRequested = "REQUESTED"
	StatusFailed    = "FAILED"
	StatusCancelled = "CANCELLED"
)

// paymentRequest holds the fields of a request this service needs.
type paymentRequest struct {
	OrderID      int64  `json:"order-id"`
	CustomerID   int64  `json:"customer-id"`
	PaymentDue   int64  `json:"payment-due"`
	CreditCardNo string `json:"credit-card-no"`
	Type         string `json:"type"`
}

// App is the payment service's application layer.
type App struct {
	log *slog.Logger
}

// New returns the application.
func New(log *slog.Logger) *App { return &App{log: log} }

// OnPaymentRequest executes a payment (a card number ending in 9999 is
// refused) or, on CANCEL, refunds it; the reply goes to the outbox in tx.
func (a *App) OnPaymentRequest(ctx context.Context, tx pgx.Tx, m consumer.Message) error {
	sagaID, err := m.SagaID()
	if err != nil {
		return err
	}
	var req paymentRequest
	if err := m.Decode(&req); err != nil {
		return err
	}
	log := a.log.With("saga_id", sagaID, "order_id", req.OrderID, "event_id", m.ID)
	var status string
	switch req.Type {
	case "REQUEST":
		if req.PaymentDue <= 0 {
			return consumer.Permanent(fmt.Errorf("payment request of saga %s: payment-due %d is not positive", sagaID, req.PaymentDue))
		}
		st := store.StatusCompleted
		if strings.HasSuffix(req.CreditCardNo, "9999") {
			st = store.StatusFailed
		}
		st, err = store.Insert(ctx, tx, store.Payment{
			SagaID: sagaID, OrderID: req.OrderID, CustomerID: req.CustomerID,
			Amount: req.PaymentDue, CardLast4: last4(req.CreditCardNo), Status: st,
		})
		status = StatusRequested
		if st == store.StatusFailed {
			status = StatusFailed
		}
	case "CANCEL":
		refunded, err := store.Refund(ctx, tx, sagaID)
		if err != nil {
			return err
		}
		status = StatusCancelled
		log.InfoContext(ctx, "payment cancelled", "refunded", refunded)
	default:
		return consumer.Permanent(fmt.Errorf("unknown payment request type %q", req.Type))
	}
	if err != nil {
		return err
	}
	log.InfoContext(ctx, "payment request answered", "type", req.Type, "status", status)
	return outbox.Write(ctx, tx, saga.Reply("payment", "PaymentUpdated", sagaID, status))
}

func last4(card string) string {
	if len(card) <= 4 {
		return card
	}
	return card[len(card)-4:]
}
