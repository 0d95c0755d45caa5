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

// OnPaymentRequest answers a payment REQUEST or CANCEL; the reply goes to
// the outbox in tx. Every message of a saga leaves (or finds) one payment
// row, which makes every order of delivery safe:
//
//   - REQUEST first: charge (COMPLETED, reply REQUESTED), or refuse a card
//     ending in 9999 (FAILED, reply FAILED).
//   - REQUEST again: the first answer, nothing charged twice.
//   - CANCEL after a charge: refund it once (REFUNDED); after a refusal:
//     nothing to refund. Reply CANCELLED.
//   - CANCEL first (or instead of the REQUEST): nothing to refund; the row
//     CANCELLED (amount 0) is the marker that refuses the REQUEST if it
//     comes later. Reply CANCELLED.
//   - REQUEST after a CANCEL (REFUNDED or CANCELLED): refused, reply
//     FAILED, nothing charged.
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
	p := store.Payment{
		SagaID: sagaID, OrderID: req.OrderID, CustomerID: req.CustomerID,
		Amount: req.PaymentDue, CardLast4: last4(req.CreditCardNo),
	}
	var status string
	switch req.Type {
	case "REQUEST":
		if req.PaymentDue <= 0 {
			return consumer.Permanent(fmt.Errorf("payment request of saga %s: payment-due %d is not positive", sagaID, req.PaymentDue))
		}
		p.Status = store.StatusCompleted
		if strings.HasSuffix(req.CreditCardNo, "9999") {
			p.Status = store.StatusFailed
		}
		st, _, err := store.Insert(ctx, tx, p)
		if err != nil {
			return err
		}
		switch st {
		case store.StatusCompleted:
			status = StatusRequested
		case store.StatusFailed:
			status = StatusFailed
		default: // REFUNDED, CANCELLED: the saga cancelled this step already
			log.WarnContext(ctx, "payment request after its cancellation refused", "payment_status", st)
			status = StatusFailed
		}
	case "CANCEL":
		prev, err := store.Cancel(ctx, tx, p)
		if err != nil {
			return err
		}
		status = StatusCancelled
		switch prev {
		case "":
			log.InfoContext(ctx, "payment cancelled before its request: marker left, nothing refunded")
		case store.StatusCompleted:
			log.InfoContext(ctx, "payment refunded")
		default:
			log.InfoContext(ctx, "payment cancel: nothing to refund", "payment_status", prev)
		}
	default:
		return consumer.Permanent(fmt.Errorf("unknown payment request type %q", req.Type))
	}
	log.DebugContext(ctx, "payment request answered", "type", req.Type, "status", status)
	return outbox.Write(ctx, tx, saga.Reply("payment", "PaymentUpdated", sagaID, status))
}

func last4(card string) string {
	if len(card) <= 4 {
		return card
	}
	return card[len(card)-4:]
}
