// Package customer is the customer service: it holds each customer's open
// credit limit and serves the credit-approval step of the order-placement
// saga (pkg/participant) — approve and reserve the amount, reject, or give
// it back on compensation — and the credit-release step of the
// order-cancellation saga.
package customer

import (
	"context"
	"io"

	"github.com/sagabox/sagabox/contracts"
	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/participant"
	"github.com/sagabox/sagabox/services/customer/internal/credit"
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
		Topics:     []string{contracts.CreditApproval().RequestTopic(), contracts.CreditRelease().RequestTopic()},
		Build: func(d platform.Deps) (platform.Parts, error) {
			p, err := participant.New(d.Log, credit.Approval(), credit.Release())
			if err != nil {
				return platform.Parts{}, err
			}
			return platform.Parts{Handler: p.Handle, Routes: credit.Routes(p, d.Pool, d.Health, d.Log),
				Pruners: []platform.Pruner{{Name: "step records", Retention: d.Config.Retention.Steps, Prune: p.Prune}}}, nil
		},
	}
}
