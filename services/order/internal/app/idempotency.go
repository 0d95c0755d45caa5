package app

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/pkg/card"
	"github.com/sagabox/sagabox/services/order/internal/store"
)

// ErrKeyReused reports an idempotency key that placed another order: the
// same key with a different request.
var ErrKeyReused = errors.New("idempotency key already used for a different order")

// MaxIdempotencyKeyLen bounds an idempotency key.
const MaxIdempotencyKeyLen = 255

// PlaceOrderOnce is PlaceOrder under an idempotency key (none when key is
// ""): the key is recorded in the order's transaction, and a request that
// comes again with it — a client retrying after a timeout — gets the order
// placed the first time (replayed true) instead of placing another. The
// same key with a different order is ErrKeyReused. Of two concurrent
// requests with one key, the second waits for the first to commit and
// gets its order. A key is kept for Settings.IdempotencyKeyTTL.
func (a *App) PlaceOrderOnce(ctx context.Context, key string, p PlaceOrder) (o store.Order, replayed bool, err error) {
	if err := p.Validate(); err != nil {
		return store.Order{}, false, err
	}
	if key != "" {
		first, err := store.OrderOfIdempotencyKey(ctx, a.pool, key)
		if err == nil {
			return a.replay(first, p)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return store.Order{}, false, fmt.Errorf("place order: %w", err)
		}
	}
	errTaken := errors.New("idempotency key taken")
	err = pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		var err error
		if o, err = a.placeOrder(ctx, tx, p); err != nil || key == "" {
			return err
		}
		recorded, err := store.RecordIdempotencyKey(ctx, tx, key, o.ID)
		if err == nil && !recorded {
			err = errTaken // a concurrent request with the key committed first
		}
		return err
	})
	if errors.Is(err, errTaken) {
		first, err := store.OrderOfIdempotencyKey(ctx, a.pool, key)
		if err != nil {
			return store.Order{}, false, fmt.Errorf("place order: %w", err)
		}
		return a.replay(first, p)
	}
	if err != nil {
		return store.Order{}, false, fmt.Errorf("place order: %w", err)
	}
	a.log.DebugContext(ctx, "order placed", "order_id", o.ID, "saga_id", o.SagaID)
	return o, false, nil
}

// replay answers a request whose idempotency key placed order first: that
// order, if the request asks for the same one.
func (a *App) replay(first store.Order, p PlaceOrder) (store.Order, bool, error) {
	if !a.sameOrder(first, p) {
		return store.Order{}, false, fmt.Errorf("place order %d: %w", first.ID, ErrKeyReused)
	}
	return first, true, nil
}

// sameOrder reports whether p asks for order o: the same customer, item,
// quantity, amount and card number (opened from its sealed form; by its
// last four characters when no key of the ring opens it any more).
func (a *App) sameOrder(o store.Order, p PlaceOrder) bool {
	number := strings.TrimSpace(p.CreditCardNo)
	if o.CustomerID != p.CustomerID || o.ItemID != p.ItemID || o.Quantity != p.Quantity || o.PaymentDue != p.PaymentDue {
		return false
	}
	stored, err := a.settings.CardKeys.Open(o.CardSealed, []byte(o.SagaID.String()))
	if err != nil {
		return o.CardLast4 == card.Last4(number)
	}
	return subtle.ConstantTimeCompare([]byte(stored), []byte(number)) == 1
}

// RunKeyPruner removes the idempotency keys older than
// Settings.IdempotencyKeyTTL, a batch at a time, every TTL/24 (at most
// hourly, at least every second), until ctx ends. A failed round (the
// database away) is logged and tried again at the next.
func (a *App) RunKeyPruner(ctx context.Context) error {
	ttl := a.settings.IdempotencyKeyTTL
	t := time.NewTicker(min(max(ttl/24, time.Second), time.Hour))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for {
			n, err := store.PruneIdempotencyKeys(ctx, a.pool, time.Now().Add(-ttl), pruneBatch)
			if err != nil {
				if ctx.Err() == nil {
					a.log.WarnContext(ctx, "pruning idempotency keys failed", "err", err)
				}
				break
			}
			if n < pruneBatch {
				break
			}
		}
	}
}

// pruneBatch is how many rows one pruning statement deletes: small enough
// that the hot path never waits on it.
const pruneBatch = 1000
