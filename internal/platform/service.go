package platform

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5/pgxpool"
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
	stopTracing, err := StartTracing(ctx, getenv, cfg.Name, log)
	if err != nil {
		return err
	}
	defer stopTracing()

	pool, err := OpenDB(ctx, cfg, s.Migrations, log)
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
		Pool: pool, Handler: handler, Logger: log,
	})
	if err != nil {
		return err
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return messages.Run(ctx) })
	g.Go(func() error { return PruneOutbox(ctx, cfg, pool, log) })
	g.Go(func() error { return Serve(ctx, cfg, HTTPHandler(routes), log) })
	log.InfoContext(ctx, "service started", "http", cfg.HTTPAddr, "topics", s.Topics)
	err = g.Wait()
	log.InfoContext(context.WithoutCancel(ctx), "service stopped", "err", err)
	return err
}
