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
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/pkg/card"
	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/services/order/internal/store"
)

// ErrInvalid reports an order that cannot be placed; the message says why.
var ErrInvalid = errors.New("invalid order")

// App is the order service's application layer.
type App struct {
	pool     *pgxpool.Pool
	sagas    *saga.Orchestrator
	log      *slog.Logger
	settings Settings
}

// New returns the application over pool, running the order-placement saga
// with the deadline policy of settings and sealing card numbers with its
// CardKeys; observers are told of every saga transition (metrics).
func New(pool *pgxpool.Pool, log *slog.Logger, settings Settings, observers ...saga.Observer) (*App, error) {
	if settings.CardKeys.Empty() {
		return nil, fmt.Errorf("order app: %w: card numbers cannot be sealed", card.ErrNoKeys)
	}
	o, err := saga.New(Placement(settings), observers...)
	if err != nil {
		return nil, err
	}
	return &App{pool: pool, sagas: o, log: log, settings: settings}, nil
}

// PlaceOrder is the input of PlaceOrder. Amounts are integer cents.
type PlaceOrder struct {
	CustomerID   int64
	ItemID       int64
	Quantity     int
	PaymentDue   int64
	CreditCardNo string
}

// Validate reports every problem of p: each field must be what its column
// holds (quantity an integer, the ids and amount a bigint) and make sense.
func (p PlaceOrder) Validate() error {
	var errs []string
	if p.CustomerID <= 0 {
		errs = append(errs, "customerId must be a positive id")
	}
	if p.ItemID <= 0 {
		errs = append(errs, "itemId must be a positive id")
	}
	if p.Quantity <= 0 || p.Quantity > math.MaxInt32 {
		errs = append(errs, fmt.Sprintf("quantity must be 1 to %d", math.MaxInt32))
	}
	if p.PaymentDue <= 0 {
		errs = append(errs, "paymentDue must be a positive amount of cents")
	}
	switch n := strings.TrimSpace(p.CreditCardNo); {
	case n == "":
		errs = append(errs, "creditCardNo is empty")
	case len(n) > card.MaxNumberLen:
		errs = append(errs, fmt.Sprintf("creditCardNo is longer than %d characters", card.MaxNumberLen))
	case !printable(n):
		errs = append(errs, "creditCardNo must be printable text (no control characters, valid UTF-8)")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

// printable reports text without control characters, in valid UTF-8: what
// a text column stores and a log line shows as it is.
func printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// PlaceOrder stores the order and starts its saga in one transaction: the
// order, the saga row and the credit-approval request commit together. The
// card number goes no further in clear: it is sealed for the saga with the
// first card key, and only that and its last four characters are stored.
func (a *App) PlaceOrder(ctx context.Context, p PlaceOrder) (store.Order, error) {
	o, _, err := a.PlaceOrderOnce(ctx, "", p)
	return o, err
}

// placeOrder is PlaceOrder within tx, for a validated p.
func (a *App) placeOrder(ctx context.Context, tx pgx.Tx, p PlaceOrder) (store.Order, error) {
	number := strings.TrimSpace(p.CreditCardNo)
	o := store.Order{
		CustomerID: p.CustomerID, ItemID: p.ItemID, Quantity: p.Quantity, PaymentDue: p.PaymentDue,
		CardLast4: card.Last4(number), Status: store.StatusCreated, SagaID: uuid.New(),
	}
	sealed, err := a.settings.CardKeys.Seal(number, []byte(o.SagaID.String()))
	if err != nil {
		return store.Order{}, err
	}
	o.CardSealed = sealed
	id, createdAt, err := store.InsertOrder(ctx, tx, o)
	if err != nil {
		return store.Order{}, err
	}
	o.ID, o.CreatedAt = id, createdAt
	payload, err := json.Marshal(RequestPayload{
		OrderID: id, CustomerID: o.CustomerID, PaymentDue: o.PaymentDue,
		CardSealed: o.CardSealed, Type: TypeRequest,
	})
	if err != nil {
		return store.Order{}, fmt.Errorf("encode saga payload: %w", err)
	}
	if _, err := a.sagas.Start(ctx, tx, o.SagaID, payload, createdAt); err != nil {
		return store.Order{}, err
	}
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
	for _, s := range Placement(DefaultSettings()).Steps {
		topics = append(topics, s.Name+".response")
	}
	return topics
}

// OnReply applies a participant's reply (topic "<step>.response", key = saga
// id) within tx, recording the message as the transition's cause, and
// settles the order as soon as the saga's outcome is known. A lost
// optimistic lock surfaces as saga.ErrStale: the consumer retries the
// message. A reply ahead of the saga as this transaction sees it — no saga
// yet, or a step that does not show the message this reply answers — is
// Early: the transaction that sent that message has committed and was
// published, but is not visible here yet (see saga.ErrEarlyReply); the
// consumer tries it again shortly. A late reply (duplicated, to a step
// already settled, after the saga ended) changes nothing and is logged.
func (a *App) OnReply(ctx context.Context, tx pgx.Tx, m consumer.Message) error {
	step, sagaID, err := decodeReply(m)
	if err != nil {
		return err
	}
	cause := saga.Cause{EventID: m.ID, Topic: m.Topic, EventType: m.EventType}
	s, changed, err := a.sagas.Handle(ctx, tx, sagaID, step, m.Value, cause)
	switch {
	case errors.Is(err, saga.ErrNotFound), errors.Is(err, saga.ErrEarlyReply):
		return consumer.Early(err)
	case errors.Is(err, saga.ErrUnexpectedReply), errors.Is(err, saga.ErrBadReply):
		return consumer.Permanent(err)
	case err != nil:
		return err
	}
	if !changed {
		a.log.WarnContext(ctx, "late reply ignored: its step no longer waits for it", "saga_id", sagaID, "saga_step", step,
			"event_id", m.ID, "event_type", m.EventType, "topic", m.Topic,
			"saga_status", s.Status, "step_status", s.StepStatus[step], "version", s.Version)
		return nil
	}
	// One INFO line per saga, when it ends; every step at DEBUG (a line per
	// message costs more CPU than the rest of its handling under load).
	level := slog.LevelDebug
	if s.Status.Done() {
		level = slog.LevelInfo
	}
	a.log.Log(ctx, level, "saga advanced", "saga_id", sagaID, "saga_step", step, "event_id", m.ID,
		"saga_status", s.Status, "step_status", s.StepStatus[step], "version", s.Version)
	return settle(ctx, tx, s)
}

// decodeReply reads what OnReply needs from a reply before it touches the
// database: the step (from the topic) and the saga id (the key). Its
// errors are permanent: the message can never be applied. The body is read
// by the step's Outcome.
func decodeReply(m consumer.Message) (step string, sagaID uuid.UUID, err error) {
	step, ok := strings.CutSuffix(m.Topic, ".response")
	if !ok {
		return "", uuid.Nil, consumer.Permanent(fmt.Errorf("not a reply topic: %s", m.Topic))
	}
	sagaID, err = m.SagaID()
	return step, sagaID, err
}

// settle gives the order of saga s its outcome once the saga has one: the
// order is ACCEPTED when the saga succeeded, REJECTED as soon as the saga
// aborts — its compensations may still be under way (a participant that
// is down holds them), but the order's fate no longer depends on them.
func settle(ctx context.Context, tx pgx.Tx, s saga.State) error {
	switch s.Status {
	case saga.StatusSucceeded:
		return store.SettleSaga(ctx, tx, s.ID, store.StatusAccepted)
	case saga.StatusAborting, saga.StatusAborted:
		return store.SettleSaga(ctx, tx, s.ID, store.StatusRejected)
	}
	return nil
}
