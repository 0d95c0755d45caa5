package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/sagabox/sagabox/api"
	"github.com/sagabox/sagabox/internal/metrics"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/consumer"
)

// Service describes one of the three services for Run.
type Service struct {
	// Defaults are the configuration used where the environment is silent;
	// they work with `make run`.
	Defaults Config
	// Migrations of the service database, applied at start.
	Migrations migrations.Schema
	// Topics the service consumes.
	Topics []string
	// Settings, when set, reads the service's own environment variables
	// (beyond Config). Run calls it before anything else, together with
	// LoadConfig, and reports both sets of problems at once; it runs
	// before Build, which may use what it read.
	Settings func(getenv func(string) string) error
	// Build wires the application once the database is open.
	Build func(Deps) (Parts, error)
	// TracerProvider receives the service's spans. Nil means configured
	// from the OTEL_* environment (see NewTracerProvider).
	TracerProvider trace.TracerProvider
}

// Deps is what Build gets.
type Deps struct {
	Config Config
	Pool   *pgxpool.Pool
	Log    *slog.Logger
	// Health serves /healthz.
	Health http.Handler
	// Metrics is the service's registry, served at /metrics.
	Metrics prometheus.Registerer
}

// Parts is what Build returns.
type Parts struct {
	// Handler applies the messages of Topics.
	Handler consumer.Handler
	// Retryable, when set, reports handler errors that are transient
	// (consumer.Config.Retryable), e.g. a lost optimistic lock.
	Retryable func(error) bool
	// EarlyWait bounds the wait for the state a message reported Early
	// answers (consumer.Config.EarlyWait); zero: the consumer's default.
	EarlyWait time.Duration
	// Routes is the HTTP API.
	Routes http.Handler
	// Tasks run beside the consumer and the HTTP server until their context
	// ends (e.g. the order service's deadline sweeper); one returning an
	// error stops the service.
	Tasks []func(ctx context.Context) error
	// Pruners remove the rows of the service's own that only grow (the
	// order service's ended sagas, a participant's step records), beside
	// the outbox, journal and parked messages every service prunes.
	Pruners []Pruner
	// Setup, when set, runs once before the consumer, the tasks and the
	// HTTP server start (e.g. the order service sealing card numbers an
	// older version stored in clear); an error stops the service.
	Setup func(ctx context.Context) error
}

// Run builds config → logger → tracing → database → Kafka → app → servers,
// runs the consumer, the HTTP server and outbox pruning until ctx ends or one
// of them fails, and shuts everything down.
func (s Service) Run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := LoadConfig(getenv, s.Defaults)
	if s.Settings != nil {
		err = errors.Join(err, s.Settings(getenv))
	}
	if err != nil {
		return fmt.Errorf("%s config: %w", s.Defaults.Name, err)
	}
	log := NewLogger(stdout, cfg)
	if names := cfg.AdminTokens.Names(); len(names) == 0 {
		log.WarnContext(ctx, "ADMIN_TOKEN is not set: every /admin request is refused")
	} else {
		log.InfoContext(ctx, "admin API enabled", "admin_tokens", names)
	}
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
	reg := metrics.NewRegistry()
	service := strings.TrimSuffix(cfg.Name, "-service")
	metrics.RegisterDatabase(reg, service, pool)
	parts, err := s.Build(Deps{Config: cfg, Pool: pool, Log: log, Health: health, Metrics: reg})
	if err != nil {
		return fmt.Errorf("build %s: %w", cfg.Name, err)
	}
	if parts.Setup != nil {
		if err := parts.Setup(ctx); err != nil {
			return fmt.Errorf("set up %s: %w", cfg.Name, err)
		}
	}
	messages, err := consumer.New(consumer.Config{
		Group: cfg.Name, Topics: s.Topics, Pool: pool, Handler: parts.Handler,
		Retryable: parts.Retryable, EarlyWait: parts.EarlyWait, Logger: log, TracerProvider: tp,
		Observer: metrics.NewConsumer(reg, cfg.Name).Observe,
	})
	if err != nil {
		return err
	}
	opts := append(messages.Opts(), kgo.SeedBrokers(cfg.Brokers...))
	if cfg.Instance != "" {
		// A restarted instance takes its partitions back at once instead
		// of waiting for its old session to time out.
		opts = append(opts, kgo.InstanceID(cfg.Instance))
	}
	kafka, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("create kafka client: %w", err)
	}
	defer kafka.Close()
	health.Kafka = kafka
	metrics.RegisterLag(reg, cfg.Name, kafka)

	g, ctx := errgroup.WithContext(ctx)
	ServePprof(ctx, getenv("PPROF_ADDR"), log)
	g.Go(func() error {
		if err := AwaitTopics(ctx, kafka, log, cfg.Retention.Topics, s.Topics...); err != nil {
			return nil // ctx ended
		}
		return messages.Run(ctx, kafka)
	})
	g.Go(func() error {
		return RunLifecycle(ctx, pool, log, append(messagingPruners(cfg.Retention), parts.Pruners...))
	})
	mux := chi.NewRouter()
	parked := ParkedAPI{Service: service, Pool: pool, Consumer: messages, Tokens: cfg.AdminTokens, Log: log}
	mux.Mount("/admin/parked", parked.Routes())
	mux.Mount("/admin/messaging", MessagingAPI{Pool: pool, Tokens: cfg.AdminTokens, Log: log}.Routes())
	mux.Method(http.MethodGet, "/metrics", metrics.Handler(reg))
	mux.Get("/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(api.OpenAPI())
	})
	mux.Mount("/", parts.Routes)
	g.Go(func() error { return Serve(ctx, cfg, HTTPHandler(mux, tp), log) })
	for _, task := range parts.Tasks {
		g.Go(func() error { return task(ctx) })
	}
	log.InfoContext(ctx, "service started", "http", cfg.HTTPAddr, "topics", s.Topics)
	err = g.Wait()
	log.InfoContext(context.WithoutCancel(ctx), "service stopped", "err", err)
	return err
}
