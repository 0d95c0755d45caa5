// Package app holds the payment service's use cases: answering the payment
// step of the order-placement saga.
package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/pkg/card"
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

// Message types on payment.request.
const (
	TypeRequest = "REQUEST"
	TypeCancel  = "CANCEL"
)

// paymentRequest holds the fields of a request this service needs.
type paymentRequest struct {
	OrderID    int64  `json:"order-id"`
	CustomerID int64  `json:"customer-id"`
	PaymentDue int64  `json:"payment-due"`
	CardSealed string `json:"credit-card-sealed"` // REQUEST only: pkg/card, sealed for the saga id
	Type       string `json:"type"`
}

// request is a payment message as the handler uses it: the card number
// itself is not part of it.
type request struct {
	SagaID                          uuid.UUID
	OrderID, CustomerID, PaymentDue int64
	Type                            string
	// CardLast4 and Refused (the card ends in 9999) are what a REQUEST's
	// card number leaves behind; a CANCEL has no card.
	CardLast4 string
	Refused   bool
}

// App is the payment service's application layer.
type App struct {
	log  *slog.Logger
	keys card.Keys
}

// New returns the application; keys open the sealed card numbers of
// payment requests.
func New(log *slog.Logger, keys card.Keys) *App { return &App{log: log, keys: keys} }

// decode reads m: the saga id (key), the fields of the body, and for a
// REQUEST the sealed card, opened in memory only to take its last four
// characters and whether it is refused. Every error is permanent (the
// message can never be applied: parked) and none quotes the card.
func (a *App) decode(m consumer.Message) (request, error) {
	sagaID, err := m.SagaID()
	if err != nil {
		return request{}, err
	}
	var p paymentRequest
	if err := m.Decode(&p); err != nil {
		return request{}, err
	}
	r := request{SagaID: sagaID, OrderID: p.OrderID, CustomerID: p.CustomerID, PaymentDue: p.PaymentDue, Type: p.Type}
	switch p.Type {
	case TypeCancel:
		return r, nil
	case TypeRequest:
	default:
		return request{}, consumer.Permanent(fmt.Errorf("unknown payment request type %q", p.Type))
	}
	if p.PaymentDue <= 0 {
		return request{}, consumer.Permanent(fmt.Errorf("payment request of saga %s: payment-due %d is not positive", sagaID, p.PaymentDue))
	}
	if p.CardSealed == "" {
		return request{}, consumer.Permanent(fmt.Errorf("payment request of saga %s carries no sealed card", sagaID))
	}
	number, err := a.keys.Open(p.CardSealed, []byte(sagaID.String()))
	if err != nil {
		return request{}, consumer.Permanent(fmt.Errorf("payment request of saga %s: %w", sagaID, err))
	}
	r.CardLast4 = card.Last4(number)
	r.Refused = r.CardLast4 == "9999"
	return r, nil
}

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
//
// A REQUEST's card is opened in memory and never stored nor logged: only
// its last four characters are kept. One that does not open (sealed with a
// key this service lacks, for another saga, or tampered with) is a
// permanent error: the message is parked, nothing is charged.
func (a *App) OnPaymentRequest(ctx context.Context, tx pgx.Tx, m consumer.Message) error {
	req, err := a.decode(m)
	if err != nil {
		return err
	}
	sagaID := req.SagaID
	log := a.log.With("saga_id", sagaID, "order_id", req.OrderID, "event_id", m.ID)
	p := store.Payment{
		SagaID: sagaID, OrderID: req.OrderID, CustomerID: req.CustomerID,
		Amount: req.PaymentDue, CardLast4: req.CardLast4,
	}
	var status string
	switch req.Type {
	case TypeRequest:
		p.Status = store.StatusCompleted
		if req.Refused {
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
	default: // TypeCancel
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
	}
	log.DebugContext(ctx, "payment request answered", "type", req.Type, "status", status)
	return outbox.Write(ctx, tx, saga.Reply("payment", "PaymentUpdated", sagaID, status))
}
