// Package order is the order service: it takes orders over HTTP and
// orchestrates the order-placement saga (credit approval, then payment)
// through its outbox, consuming the participants' replies from Kafka.
package order

import (
	"context"
	"io"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/services/order/internal/app"
	"github.com/sagabox/sagabox/services/order/internal/httpapi"
)

// Defaults work with `make run` (sagabox up).
var Defaults = platform.LocalDefaults("order", ":8080")

// Run runs the order service until ctx ends.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	return Service().Run(ctx, getenv, stdout)
}

// Service describes the order service for platform.Service.Run.
func Service() platform.Service {
	return platform.Service{
		Defaults:   Defaults,
		Migrations: migrations.Order(),
		Topics:     app.ReplyTopics(),
		// A lost optimistic lock means another reply of the saga won: the
		// message is retried with the fresh state, without limit.
		Retryable: saga.IsRetryable,
		Build: func(pool *pgxpool.Pool, log *slog.Logger, health http.Handler) (consumer.Handler, http.Handler, error) {
			a, err := app.New(pool, log)
			if err != nil {
				return nil, nil, err
			}
			return a.OnReply, httpapi.Routes(a, health, log), nil
		},
	}
}
