// Package app holds the order service's use cases: placing an order (which
// starts the order-placement saga) and applying the participants' replies.
// Each use case owns its transaction.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/services/order/internal/store"
)

// ErrInvalid reports an order that cannot be placed; the message says why.
var ErrInvalid = errors.New("invalid order")

// App is the order service's application layer.
type App struct {
	pool  *pgxpool.Pool
	sagas *saga.Orchestrator
	log   *slog.Logger
}

// New returns the application over pool.
func New(pool *pgxpool.Pool, log *slog.Logger) (*App, error) {
	o, err := saga.New(Placement())
	if err != nil {
		return nil, err
	}
	return &App{pool: pool, sagas: o, log: log}, nil
}

// PlaceOrder is the input of PlaceOrder. Amounts are integer cents.
type PlaceOrder struct {
	CustomerID   int64
	ItemID       int64
	Quantity     int
	PaymentDue   int64
	CreditCardNo string
}

// Validate reports every problem of p.
func (p PlaceOrder) Validate() error {
	var errs []string
	if p.Quantity <= 0 {
		errs = append(errs, "quantity must be positive")
	}
	if p.PaymentDue <= 0 {
		errs = append(errs, "paymentDue must be a positive amount of cents")
	}
	if strings.TrimSpace(p.CreditCardNo) == "" {
		errs = append(errs, "creditCardNo is empty")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

// PlaceOrder stores the order and starts its saga in one transaction: the
// order, the saga row and the credit-approval request commit together.
func (a *App) PlaceOrder(ctx context.Context, p PlaceOrder) (store.Order, error) {
	if err := p.Validate(); err != nil {
		return store.Order{}, err
	}
	o := store.Order{
		CustomerID: p.CustomerID, ItemID: p.ItemID, Quantity: p.Quantity,
		PaymentDue: p.PaymentDue, CreditCardNo: p.CreditCardNo,
		Status: store.StatusCreated, SagaID: uuid.New(),
	}
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		id, err := store.InsertOrder(ctx, tx, o)
		if err != nil {
			return err
		}
		o.ID = id
		payload, err := json.Marshal(RequestPayload{
			OrderID: id, CustomerID: o.CustomerID, PaymentDue: o.PaymentDue,
			CreditCardNo: o.CreditCardNo, Type: TypeRequest,
		})
		if err != nil {
			return fmt.Errorf("encode saga payload: %w", err)
		}
		_, err = a.sagas.Start(ctx, tx, o.SagaID, payload)
		return err
	})
	if err != nil {
		return store.Order{}, fmt.Errorf("place order: %w", err)
	}
	a.log.InfoContext(ctx, "order placed", "order_id", o.ID, "saga_id", o.SagaID)
	return o, nil
}

// OrderView is an order with its saga.
type OrderView struct {
	Order store.Order
	Saga  saga.State
}

// GetOrder reads order id and its saga.
func (a *App) GetOrder(ctx context.Context, id int64) (OrderView, error) {
	o, err := store.GetOrder(ctx, a.pool, id)
	if err != nil {
		return OrderView{}, err
	}
	s, err := saga.Load(ctx, a.pool, o.SagaID)
	if err != nil {
		return OrderView{}, err
	}
	return OrderView{Order: o, Saga: s}, nil
}

// GetSaga reads saga id.
func (a *App) GetSaga(ctx context.Context, id uuid.UUID) (saga.State, error) {
	return saga.Load(ctx, a.pool, id)
}

// ReplyTopics are the topics the order service consumes: one per step.
func ReplyTopics() []string {
	var topics []string
	for _, s := range Placement().Steps {
		topics = append(topics, s.Name+".response")
	}
	return topics
}

// OnReply applies a participant's reply (topic "<step>.response", key = saga
// id) within tx, and settles the order when the saga ends. A lost optimistic
// lock surfaces as saga.ErrStale: the consumer retries the message.
func (a *App) OnReply(ctx context.Context, tx pgx.Tx, m consumer.Message) error {
	step, ok := strings.CutSuffix(m.Topic, ".response")
	if !ok {
		return consumer.Permanent(fmt.Errorf("not a reply topic: %s", m.Topic))
	}
	sagaID, err := m.SagaID()
	if err != nil {
		return err
	}
	s, changed, err := a.sagas.Handle(ctx, tx, sagaID, step, m.Value)
	switch {
	case errors.Is(err, saga.ErrNotFound), errors.Is(err, saga.ErrUnexpectedReply), errors.Is(err, saga.ErrBadReply):
		return consumer.Permanent(err)
	case err != nil:
		return err
	}
	log := a.log.With("saga_id", sagaID, "saga_step", step, "event_id", m.ID)
	if !changed {
		log.WarnContext(ctx, "reply does not fit the saga state, ignored",
			"saga_status", s.Status, "step_status", s.StepStatus[step])
		return nil
	}
	log.InfoContext(ctx, "saga advanced", "saga_status", s.Status, "step_status", s.StepStatus[step], "version", s.Version)
	switch s.Status {
	case saga.StatusSucceeded:
		return store.SettleSaga(ctx, tx, sagaID, store.StatusAccepted)
	case saga.StatusAborted:
		return store.SettleSaga(ctx, tx, sagaID, store.StatusRejected)
	}
	return nil
}
