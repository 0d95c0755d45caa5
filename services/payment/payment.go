// Package payment is the payment service: it executes or refuses the
// payment step of the order-placement saga, and refunds on compensation.
package payment

import (
	"context"
	"io"

	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/services/payment/internal/app"
	"github.com/sagabox/sagabox/services/payment/internal/httpapi"
)

// Defaults work with `make run` (sagabox up).
var Defaults = platform.LocalDefaults("payment", ":8082")

// Run runs the payment service until ctx ends.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	return Service().Run(ctx, getenv, stdout)
}

// Service describes the payment service for platform.Service.Run.
func Service() platform.Service {
	return platform.Service{
		Defaults:   Defaults,
		Migrations: migrations.Payment(),
		Topics:     []string{app.RequestTopic},
		Build: func(d platform.Deps) (platform.Parts, error) {
			return platform.Parts{
				Handler: app.New(d.Log).OnPaymentRequest,
				Routes:  httpapi.Routes(d.Pool, d.Health, d.Log),
			}, nil
		},
	}
}
