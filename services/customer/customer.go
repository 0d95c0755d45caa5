// Package customer is the customer service: it holds each customer's open
// credit limit and answers the credit-approval step of the order-placement
// saga (approve and allocate, reject, or release on compensation).
package customer

import (
	"context"
	"io"

	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/services/customer/internal/app"
	"github.com/sagabox/sagabox/services/customer/internal/httpapi"
)

// Defaults work with `make run` (sagabox up).
var Defaults = platform.LocalDefaults("customer", "127.0.0.1:8081")

// Run runs the customer service until ctx ends.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	return Service().Run(ctx, getenv, stdout)
}

// Service describes the customer service for platform.Service.Run.
func Service() platform.Service {
	return platform.Service{
		Defaults:   Defaults,
		Migrations: migrations.Customer(),
		Topics:     []string{app.RequestTopic},
		Build: func(d platform.Deps) (platform.Parts, error) {
			return platform.Parts{
				Handler: app.New(d.Log).OnCreditRequest,
				Routes:  httpapi.Routes(d.Pool, d.Health, d.Log),
			}, nil
		},
	}
}
