package app

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/services/order/internal/store"
)

// PlaceOrderIn is PlaceOrder within the caller's transaction, so that a
// test can hold the saga's start uncommitted.
func (a *App) PlaceOrderIn(ctx context.Context, tx pgx.Tx, p PlaceOrder) (store.Order, error) {
	return a.placeOrder(ctx, tx, p)
}
