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
	"github.com/twmb/franz-go/pkg/kgo"
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
	// Retryable, when set, reports handler errors that are transient
	// (consumer.Config.Retryable), e.g. a lost optimistic lock.
	Retryable func(error) bool
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
	health := &HealthCheck{Pool: pool}
	handler, routes, err := s.Build(pool, log, health)
	if err != nil {
		return fmt.Errorf("build %s: %w", cfg.Name, err)
	}
	messages, err := consumer.New(consumer.Config{
		Group: cfg.Name, Topics: s.Topics, Pool: pool, Handler: handler,
		Retryable: s.Retryable, Logger: log, TracerProvider: tp,
	})
	if err != nil {
		return err
	}
	kafka, err := kgo.NewClient(append(messages.Opts(), kgo.SeedBrokers(cfg.Brokers...))...)
	if err != nil {
		return fmt.Errorf("create kafka client: %w", err)
	}
	defer kafka.Close()
	health.Kafka = kafka

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := AwaitTopics(ctx, kafka, log, s.Topics...); err != nil {
			return nil // ctx ended
		}
		return messages.Run(ctx, kafka)
	})
	g.Go(func() error { return PruneOutbox(ctx, cfg, pool, log) })
	g.Go(func() error { return Serve(ctx, cfg, HTTPHandler(routes, tp), log) })
	log.InfoContext(ctx, "service started", "http", cfg.HTTPAddr, "topics", s.Topics)
	err = g.Wait()
	log.InfoContext(context.WithoutCancel(ctx), "service stopped", "err", err)
	return err
}
