package platform

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/sagabox/sagabox/pkg/consumer"
)

// Service describes one of the three services for Run.
type Service struct {
	// Defaults are the configuration used where the environment is silent;
	// they work with `make run`.
	Defaults Config
	// Migrations of the service database, applied at start.
	Migrations fs.FS
	// Topics the service consumes.
	Topics []string
	// Build wires the application once the database is open: it returns the
	// message handler and the HTTP routes (health serves /healthz).
	Build func(pool *pgxpool.Pool, log *slog.Logger, health http.Handler) (consumer.Handler, http.Handler, error)
	// TracerProvider receives the service's spans. Nil means configured
	// from the OTEL_* environment (see NewTracerProvider).
	TracerProvider trace.TracerProvider
}

// Run builds config → logger → tracing → database → Kafka → app → servers,
// runs the consumer, the HTTP server and outbox pruning until ctx ends or one
// of them fails, and shuts everything down.
func (s Service) Run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := LoadConfig(getenv, s.Defaults)
	if err != nil {
		return fmt.Errorf("%s config: %w", s.Defaults.Name, err)
	}
	log := NewLogger(stdout, cfg)
	tp := s.TracerProvider
	if tp == nil {
		var shutdown func(context.Context) error
		tp, shutdown, err = NewTracerProvider(ctx, getenv, cfg.Name)
		if err != nil {
			return fmt.Errorf("%s tracing: %w", cfg.Name, err)
		}
		logTracing(ctx, log, getenv)
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := shutdown(sctx); err != nil {
				log.WarnContext(sctx, "flush traces failed", "err", err)
			}
		}()
	}

	pool, err := OpenDB(ctx, cfg, s.Migrations, tp, log)
	if err != nil {
		return err
	}
	defer pool.Close()
	kafka, err := NewKafkaClient(cfg)
	if err != nil {
		return err
	}
	defer kafka.Close()

	handler, routes, err := s.Build(pool, log, Health(pool, kafka))
	if err != nil {
		return fmt.Errorf("build %s: %w", cfg.Name, err)
	}
	messages, err := consumer.New(consumer.Config{
		Group: cfg.Name, Topics: s.Topics, Brokers: cfg.Brokers,
		Pool: pool, Handler: handler, Logger: log, TracerProvider: tp,
	})
	if err != nil {
		return err
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return messages.Run(ctx) })
	g.Go(func() error { return PruneOutbox(ctx, cfg, pool, log) })
	g.Go(func() error { return Serve(ctx, cfg, HTTPHandler(routes, tp), log) })
	log.InfoContext(ctx, "service started", "http", cfg.HTTPAddr, "topics", s.Topics)
	err = g.Wait()
	log.InfoContext(context.WithoutCancel(ctx), "service stopped", "err", err)
	return err
}
