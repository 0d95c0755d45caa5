package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/contracts"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/services/order/internal/store"
)

// CancellationSaga is the saga of cancelling an accepted order: refund its
// payment and release its credit, side by side.
const CancellationSaga = "order-cancellation"

// Cancellation is the payload of an order-cancellation saga: the order,
// and the placement saga whose steps it reverses.
type Cancellation = contracts.ReleaseRequest

// CancellationDefinition is the order-cancellation saga with the deadline
// policy of s. Both steps start at once and neither can fail or be
// undone — each gives back what the placement took, at most once, however
// it meets the placement's own compensation (participant.Reversal) — so
// the saga only goes forward: a step that does not answer is asked again
// until it does, and an operator cannot abort it.
func CancellationDefinition(s Settings) saga.Definition {
	same := func(c Cancellation) (contracts.ReleaseRequest, error) { return c, nil }
	d := s.WithDeadlines(saga.Define(CancellationSaga,
		saga.Call(contracts.PaymentRefund(), same).After().NoCompensation(),
		saga.Call(contracts.CreditRelease(), same).After().NoCompensation(),
	))
	d.ForwardOnly = true
	return d
}

// ErrCannotCancel reports an order that cannot be cancelled as it is (not
// ACCEPTED); the message says why.
var ErrCannotCancel = errors.New("order cannot be cancelled")

// CancelOrder starts the cancellation of ACCEPTED order id: the order goes
// CANCELLING and its order-cancellation saga starts, in one transaction.
// store.ErrNotFound for an unknown order; ErrCannotCancel for one that is
// being placed, was rejected, or is cancelled or being cancelled already.
func (a *App) CancelOrder(ctx context.Context, id int64) (store.Order, error) {
	var o store.Order
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		var err error
		if o, err = store.LockOrder(ctx, tx, id); err != nil {
			return err
		}
		switch o.Status {
		case store.StatusAccepted:
		case store.StatusCreated:
			return fmt.Errorf("%w: order %d is still being placed (its saga has not decided yet)", ErrCannotCancel, id)
		case store.StatusRejected:
			return fmt.Errorf("%w: order %d was rejected: nothing was taken", ErrCannotCancel, id)
		default:
			return fmt.Errorf("%w: order %d is %s already (saga %s)", ErrCannotCancel, id, o.Status, o.CancelSagaID)
		}
		o.CancelSagaID, o.Status = saga.NewID(), store.StatusCancelling
		if err := store.StartCancel(ctx, tx, id, o.CancelSagaID); err != nil {
			return err
		}
		payload, err := json.Marshal(Cancellation{OrderID: o.ID, CustomerID: o.CustomerID, PaymentDue: o.PaymentDue,
			PlacementSagaID: o.SagaID})
		if err != nil {
			return fmt.Errorf("encode saga payload: %w", err)
		}
		var now time.Time // the transaction's clock, which deadlines run from
		if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
			return fmt.Errorf("read the clock: %w", err)
		}
		_, err = a.sagas.Start(ctx, tx, CancellationSaga, o.CancelSagaID, payload, now)
		return err
	})
	if err != nil {
		return store.Order{}, err
	}
	return o, nil
}
