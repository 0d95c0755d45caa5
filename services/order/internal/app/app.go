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
	defs := Definitions
	if settings.Definitions != nil {
		defs = settings.Definitions
	}
	o, err := saga.New(saga.Config{Definitions: defs(settings), Observers: observers, OnTransition: settle,
		OnPrune: store.ForgetOrders, Logger: log})
	if err != nil {
		return nil, err
	}
	return &App{pool: pool, sagas: o, log: log, settings: settings}, nil
}

// Definitions are the saga types the order service runs, in every
// version it holds.
func Definitions(s Settings) []saga.Definition {
	return []saga.Definition{PlacementDefinition(s), CancellationDefinition(s)}
}

// Sagas is the orchestrator of the order service's sagas: its reply
// handler, deadline sweeper and operator actions.
func (a *App) Sagas() *saga.Orchestrator { return a.sagas }

// Pool is the service's database.
func (a *App) Pool() *pgxpool.Pool { return a.pool }

// Settings are the service's settings.
func (a *App) Settings() Settings { return a.settings }

// AdminAggregate is the outbox aggregatetype of the audit events of operator
// actions: with the order connector they go to topic "order-admin.request",
// keyed by the saga id.
const AdminAggregate = "order-admin"

// RunSweeper runs the sagas' deadline sweeper every Settings.SweepInterval
// until ctx ends.
func (a *App) RunSweeper(ctx context.Context) error {
	return a.sagas.RunSweeper(ctx, a.pool, a.settings.SweepInterval)
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
		CardLast4: card.Last4(number), Status: store.StatusCreated, SagaID: saga.NewID(),
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
	payload, err := json.Marshal(Placement{OrderID: id, CustomerID: o.CustomerID, ItemID: o.ItemID, Quantity: o.Quantity,
		PaymentDue: o.PaymentDue, CardSealed: o.CardSealed})
	if err != nil {
		return store.Order{}, fmt.Errorf("encode saga payload: %w", err)
	}
	if _, err := a.sagas.Start(ctx, tx, PlacementSaga, o.SagaID, payload, createdAt); err != nil {
		return store.Order{}, err
	}
	return o, nil
}

// OrderView is an order with its saga, and its cancellation saga if it
// has one.
type OrderView struct {
	Order        store.Order
	Saga         saga.State
	Cancellation *saga.State
}

// GetOrder reads order id and its sagas.
func (a *App) GetOrder(ctx context.Context, id int64) (OrderView, error) {
	o, err := store.GetOrder(ctx, a.pool, id)
	if err != nil {
		return OrderView{}, err
	}
	s, err := saga.Load(ctx, a.pool, o.SagaID)
	if err != nil {
		return OrderView{}, err
	}
	v := OrderView{Order: o, Saga: s}
	if o.CancelSagaID != uuid.Nil {
		c, err := saga.Load(ctx, a.pool, o.CancelSagaID)
		if err != nil {
			return OrderView{}, err
		}
		v.Cancellation = &c
	}
	return v, nil
}

// GetSaga reads saga id.
func (a *App) GetSaga(ctx context.Context, id uuid.UUID) (saga.State, error) {
	return saga.Load(ctx, a.pool, id)
}

// ReplyTopics are the topics the order service consumes: the replies of
// its sagas' steps.
func ReplyTopics() []string { return saga.ReplyTopics(Definitions(DefaultSettings())...) }

// settle gives the order of saga s its outcome once the saga has one, in
// the transaction of every transition (saga.Config.OnTransition): the
// order is ACCEPTED when the saga succeeded, REJECTED as soon as the saga
// aborts — its compensations may still be under way (a participant that
// is down holds them), but the order's fate no longer depends on them.
//
// An order-cancellation saga makes its order CANCELLED when it succeeds.
// It cannot abort but on a FAILED reply, which its participants never
// send: the order would then stay CANCELLING, its saga ABORTED for an
// operator to see.
func settle(ctx context.Context, tx pgx.Tx, s saga.State) error {
	switch {
	case s.Type == CancellationSaga && s.Status == saga.StatusSucceeded:
		return store.SettleCancel(ctx, tx, s.ID)
	case s.Type == CancellationSaga:
		return nil
	case s.Status == saga.StatusSucceeded:
		return store.SettleSaga(ctx, tx, s.ID, store.StatusAccepted)
	case s.Status == saga.StatusAborting, s.Status == saga.StatusAborted:
		return store.SettleSaga(ctx, tx, s.ID, store.StatusRejected)
	}
	return nil
}
