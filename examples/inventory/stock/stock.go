// Package stock is the example's participant: it keeps the items on hand
// and serves the inventory-reservation step; pkg/participant does the rest.
package stock

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/examples/inventory"
	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/participant"
)

//go:embed *.sql
var schema embed.FS

// Service describes the stock service for platform.Service.Run.
func Service() platform.Service {
	return platform.Service{
		Defaults:   platform.LocalDefaults("stock", "127.0.0.1:8083"),
		Migrations: migrations.Participant(schema), // the barrier, the messaging tables, stock
		Topics:     []string{inventory.Reservation().RequestTopic()},
		Build: func(d platform.Deps) (platform.Parts, error) {
			p, err := participant.New(d.Log, Reservation())
			if err != nil {
				return platform.Parts{}, err
			}
			r := platform.Router(d.Health)
			r.Mount("/steps", p.Routes(d.Pool, d.Log))
			return platform.Parts{Handler: p.Handle, Routes: r}, nil
		},
	}
}

// Reserved is what the step did for a saga: the quantity of the item set
// aside, 0 when it was refused.
type Reserved struct {
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
}

// Reservation is the inventory-reservation step: a quantity on hand is set
// aside, one that is not (or an unknown item) is refused; the compensation
// puts back what the saga set aside.
func Reservation() participant.Step[inventory.ReserveRequest, Reserved] {
	return participant.Step[inventory.ReserveRequest, Reserved]{
		Contract: inventory.Reservation(),
		Do: func(ctx context.Context, tx pgx.Tx, c participant.Call[inventory.ReserveRequest]) (Reserved, bool, error) {
			r := Reserved{SKU: c.Request.SKU}
			const q = `UPDATE stock SET on_hand = on_hand - $2 WHERE sku = $1 AND $2 > 0 AND on_hand >= $2`
			tag, err := tx.Exec(ctx, q, r.SKU, c.Request.Quantity)
			if err != nil {
				return r, false, fmt.Errorf("take %d of %q: %w", c.Request.Quantity, r.SKU, err)
			}
			if tag.RowsAffected() == 0 {
				return r, false, nil
			}
			r.Quantity = c.Request.Quantity
			return r, true, nil
		},
		Undo: func(ctx context.Context, tx pgx.Tx, _ participant.Call[inventory.ReserveRequest], r Reserved) error {
			if _, err := tx.Exec(ctx, `UPDATE stock SET on_hand = on_hand + $2 WHERE sku = $1`, r.SKU, r.Quantity); err != nil {
				return fmt.Errorf("put back %d of %q: %w", r.Quantity, r.SKU, err)
			}
			return nil
		},
	}
}
