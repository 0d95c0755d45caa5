package app

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/services/order/internal/store"
)

// SealLegacyCards seals the card numbers that an older version stored in
// clear and that migration 00006 had to leave, because their sagas may
// still send a payment request: each goes sealed into its order row and its
// saga's payload, and the number in clear is cleared, one order per
// transaction. It returns how many it sealed. The order service runs it at
// start, before it consumes, sweeps or serves; instances starting together
// share the work.
func (a *App) SealLegacyCards(ctx context.Context) (int, error) {
	n := 0
	for {
		found := false
		err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
			c, ok, err := store.NextLegacyCard(ctx, tx)
			if err != nil || !ok {
				return err
			}
			found = true
			sealed, err := a.settings.CardKeys.Seal(c.Number, []byte(c.SagaID.String()))
			if err != nil {
				return fmt.Errorf("seal the card of order %d: %w", c.OrderID, err)
			}
			return store.SealLegacyCard(ctx, tx, c, sealed)
		})
		if err != nil {
			return n, fmt.Errorf("seal card numbers stored in clear: %w", err)
		}
		if !found {
			break
		}
		n++
	}
	if n > 0 {
		a.log.InfoContext(ctx, "card numbers stored in clear by an older version sealed", "orders", n)
	}
	return n, nil
}
