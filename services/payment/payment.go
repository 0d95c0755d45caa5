// Package payment is the payment service: it serves the payment step of the
// order-placement saga and the payment-refund step of the
// order-cancellation saga (pkg/participant): it charges the order's card or
// refuses it, and refunds on compensation or cancellation.
package payment

import (
	"context"
	"io"

	"github.com/sagabox/sagabox/contracts"
	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/card"
	"github.com/sagabox/sagabox/pkg/participant"
	"github.com/sagabox/sagabox/services/payment/internal/charge"
)

// Defaults work with `make run` (sagabox up).
var Defaults = platform.LocalDefaults("payment", "127.0.0.1:8082")

// Run runs the payment service until ctx ends.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	return Service().Run(ctx, getenv, stdout)
}

// Service describes the payment service for platform.Service.Run. It is
// the one service that opens sealed card numbers (CARD_KEYS,
// CARD_KEYS_FILE).
func Service() platform.Service {
	var keys card.Keys
	return platform.Service{
		Defaults:   Defaults,
		Migrations: migrations.Payment(),
		Topics:     []string{contracts.Payment().RequestTopic(), contracts.PaymentRefund().RequestTopic()},
		Settings: func(getenv func(string) string) (err error) {
			keys, err = platform.LoadCardKeys(getenv)
			return err
		},
		Build: func(d platform.Deps) (platform.Parts, error) {
			p, err := participant.New(d.Log, charge.Payment(keys), charge.Refund())
			if err != nil {
				return platform.Parts{}, err
			}
			return platform.Parts{
				Handler: p.Handle,
				// The step records, and the payments with them.
				Pruners: []platform.Pruner{{Name: "step records", Retention: d.Config.Retention.Steps, Prune: p.Prune}},
				Setup: func(ctx context.Context) error {
					d.Log.InfoContext(ctx, "card keys loaded", "card_keys", keys) // ids only
					return nil
				},
				Routes: charge.Routes(p, d.Pool, d.Health, d.Log),
			}, nil
		},
	}
}
