// Package order is the order service: it takes orders over HTTP and
// orchestrates the order-placement saga (credit approval, then payment)
// through its outbox, consuming the participants' replies from Kafka.
package order

import (
	"context"
	"errors"
	"io"

	"github.com/sagabox/sagabox/internal/metrics"
	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/services/order/internal/app"
	"github.com/sagabox/sagabox/services/order/internal/httpapi"
)

// Defaults work with `make run` (sagabox up).
var Defaults = platform.LocalDefaults("order", "127.0.0.1:8080")

// Run runs the order service until ctx ends.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	return Service().Run(ctx, getenv, stdout)
}

// Service describes the order service for platform.Service.Run: besides the
// consumer and the HTTP API it runs the saga deadline sweeper.
func Service() platform.Service { return ServiceWith(app.Definitions) }

// ServiceWith is Service running the saga definitions defs returns for its
// settings — every version of every type it holds — instead of
// app.Definitions: what a test of a changed definition deploys.
func ServiceWith(defs func(app.Settings) []saga.Definition) platform.Service {
	settings := app.DefaultSettings()
	return platform.Service{
		Defaults:   Defaults,
		Migrations: migrations.Order(),
		Topics:     saga.ReplyTopics(defs(settings)...),
		// Settings reads the saga settings and the card keys before Build
		// uses them.
		Settings: func(getenv func(string) string) error {
			var err, keysErr error
			settings, err = app.LoadSettings(getenv)
			settings.CardKeys, keysErr = platform.LoadCardKeys(getenv)
			return errors.Join(err, keysErr)
		},
		Build: func(d platform.Deps) (platform.Parts, error) {
			settings.Definitions = defs
			a, err := app.New(d.Pool, d.Log, settings, metrics.NewSagas(d.Metrics).Observe)
			if err != nil {
				return platform.Parts{}, err
			}
			metrics.RegisterUnknownVersions(d.Metrics, a.Sagas(), d.Pool)
			return platform.Parts{
				Handler: a.Sagas().OnReply,
				// A lost optimistic lock means another reply of the saga
				// won: the message is retried with the fresh state.
				Retryable: saga.IsRetryable,
				EarlyWait: settings.EarlyReplyWait,
				Routes:    httpapi.Routes(a, d.Health, d.Log, d.Config.AdminTokens),
				Tasks:     []func(context.Context) error{a.RunSweeper, a.RunKeyPruner},
				Pruners:   []platform.Pruner{{Name: "ended sagas", Retention: d.Config.Retention.Sagas, Prune: a.Sagas().Prune}},
				// Card numbers an older version stored in clear are sealed
				// before any saga moves on.
				Setup: func(ctx context.Context) error {
					d.Log.InfoContext(ctx, "card keys loaded; the first seals", "card_keys", settings.CardKeys) // ids only
					_, err := a.SealLegacyCards(ctx)
					return err
				},
			}, nil
		},
	}
}
