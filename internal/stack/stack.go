// Package stack is a test harness: it runs the whole system in one process
// on top of a Postgres server and a Kafka-protocol broker it is given — the
// outbox relays (one per connector file, doing Debezium's job) and the
// services it is given (the end-to-end tests give it the registry's,
// package system). They use it with fresh databases, and stop and restart
// single services; `sagabox up` runs the same components as one process
// each (cmd/sagabox, internal/supervisor).
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"

	"github.com/sagabox/sagabox/internal/platform"

	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/relay"
)

// ServiceSpec names a service, its entry point and migrations.
type ServiceSpec struct {
	Name       string // "order"
	Database   string // the database name its connector files use
	Service    func() platform.Service
	Migrations migrations.Schema
	// CardKeys: the service seals or opens card numbers, and only such a
	// service is given the card keys (CARD_KEYS, CARD_KEYS_FILE).
	CardKeys bool
}

// Config describes where the stack runs.
type Config struct {
	// Services are the services to run, in start order.
	Services []ServiceSpec
	// ConnectorsDir holds the Debezium connector files the relays read,
	// unless Connectors are given.
	ConnectorsDir string
	// Connectors, when set, are the connectors to relay (read with
	// relay.LoadConnectors), instead of ConnectorsDir's.
	Connectors []relay.Connector
	// DatabaseURLs maps a connector's database.dbname ("orderdb", ...) to
	// the URL the service and its relay use instead of the connector's
	// Docker host names.
	DatabaseURLs map[string]string
	// Brokers is the Kafka bootstrap address list.
	Brokers []string
	// HTTPAddrs maps a service name to its listen address.
	HTTPAddrs map[string]string
	// SlotSuffix is appended to replication slot names (slots are global to
	// a Postgres server; tests share one).
	SlotSuffix string
	// Env is consulted for service environment variables (OTEL_*, ...)
	// before the stack's own values. Nil means none. The card key variables
	// are never taken from it: see CardKeys.
	Env func(string) string
	// CardKeys is the card key ring (CARD_KEYS) given to the services that
	// seal or open card numbers, and to no other. SetCardKeys changes it
	// for the services started later.
	CardKeys string
	// Stdout receives the services' JSON logs.
	Stdout io.Writer
	// Logger is the stack's own logger.
	Logger *slog.Logger
	// TracerProvider, when set, gives the tracer provider of each component
	// ("order", "customer", "payment", "relay"); the tests use it to collect
	// spans in memory. Nil: each service configures itself from OTEL_*.
	TracerProvider func(component string) trace.TracerProvider
}

// Stack is a running system.
type Stack struct {
	cfg      Config
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex
	services map[string]*running
	cardKeys string
	relays   *relay.Supervisor // nil until started
	relayTP  trace.TracerProvider
	stopTP   func(context.Context) error
}

type running struct {
	cancel context.CancelFunc
	done   chan error
	exited atomic.Pointer[error] // set when Run returned
}

// Start migrates the databases, creates the relays' publications and
// replication slots (before any service can write to an outbox, so no row
// is missed), then starts the relays and the services.
func Start(ctx context.Context, cfg Config) (*Stack, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Stdout == nil {
		cfg.Stdout = io.Discard
	}
	if cfg.Env == nil {
		cfg.Env = func(string) string { return "" }
	}
	for _, svc := range cfg.Services {
		if err := migrate(ctx, cfg.DatabaseURLs[svc.Database], svc.Migrations); err != nil {
			return nil, fmt.Errorf("migrate %s: %w", svc.Database, err)
		}
	}
	connectors := slices.Clone(cfg.Connectors)
	var err error
	if connectors == nil {
		if connectors, err = relay.LoadConnectors(cfg.ConnectorsDir); err != nil {
			return nil, err
		}
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Stack{cfg: cfg, log: cfg.Logger, ctx: sctx, cancel: cancel, services: map[string]*running{}, cardKeys: cfg.CardKeys}
	if cfg.TracerProvider != nil {
		s.relayTP, s.stopTP = cfg.TracerProvider("relay"), func(context.Context) error { return nil }
	} else if s.relayTP, s.stopTP, err = platform.NewTracerProvider(ctx, cfg.Env, "outbox-relay"); err != nil {
		cancel()
		return nil, fmt.Errorf("relay tracing: %w", err)
	}
	if err := s.startRelays(ctx, connectors); err != nil {
		s.Close()
		return nil, err
	}
	for _, svc := range cfg.Services {
		if err := s.StartService(svc.Name); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func migrate(ctx context.Context, dbURL string, schema migrations.Schema) error {
	if dbURL == "" {
		return errors.New("no database URL")
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer pool.Close()
	return migrations.Up(ctx, pool, schema)
}

// startRelays runs one relay per connector under a relay.Supervisor, the
// one `sagabox relay` runs: a relay that fails (Kafka or Postgres gone) is
// restarted from its slot's confirmed position after a backoff. The slots
// are created first, so the services' first rows are streamed rather than
// snapshotted.
func (s *Stack) startRelays(ctx context.Context, connectors []relay.Connector) error {
	for i := range connectors {
		if _, ok := s.cfg.DatabaseURLs[connectors[i].DBName]; !ok {
			return fmt.Errorf("connector %s: no database URL for %s", connectors[i].Name, connectors[i].DBName)
		}
		connectors[i].SlotName += s.cfg.SlotSuffix
	}
	sup, err := relay.NewSupervisor(relay.SupervisorConfig{
		Connectors: connectors,
		ConnString: func(c relay.Connector) string { return s.cfg.DatabaseURLs[c.DBName] },
		Brokers:    s.cfg.Brokers,
		Logger:     s.log,
		Relay:      relay.Config{TracerProvider: s.relayTP},
	})
	if err != nil {
		return err
	}
	s.relays = sup
	if err := sup.Setup(ctx); err != nil {
		return err
	}
	s.wg.Go(func() { _ = sup.Run(s.ctx) })
	return nil
}

// StartService starts service name (not running yet).
func (s *Stack) StartService(name string) error {
	spec, ok := s.serviceSpec(name)
	if !ok {
		return fmt.Errorf("no service %q", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.services[name]; ok {
		return fmt.Errorf("service %s already running", name)
	}
	env := map[string]string{
		"DATABASE_URL":  s.cfg.DatabaseURLs[spec.Database],
		"KAFKA_BROKERS": strings.Join(s.cfg.Brokers, ","),
		"HTTP_ADDR":     s.cfg.HTTPAddrs[name],
		// Start migrated every database already (the relays' publications
		// need the outbox tables before any service writes).
		"MIGRATE": "false",
	}
	if spec.CardKeys {
		env[platform.CardKeysEnv] = s.cardKeys
	}
	getenv := func(k string) string {
		if k == platform.CardKeysEnv || k == platform.CardKeysFileEnv {
			return env[k]
		}
		if v := s.cfg.Env(k); v != "" {
			return v
		}
		return env[k]
	}
	ctx, cancel := context.WithCancel(s.ctx)
	r := &running{cancel: cancel, done: make(chan error, 1)}
	s.services[name] = r
	go func() {
		svc := spec.Service()
		if s.cfg.TracerProvider != nil {
			svc.TracerProvider = s.cfg.TracerProvider(name)
		}
		err := svc.Run(ctx, getenv, s.cfg.Stdout)
		if err != nil && ctx.Err() == nil {
			s.log.Error("service failed", "service", name, "err", err)
		}
		r.exited.Store(&err)
		r.done <- err
	}()
	return nil
}

// SetCardKeys sets the card key ring of the services started from now on
// (a rotation: restart the services that open, then those that seal).
func (s *Stack) SetCardKeys(keys string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cardKeys = keys
}

// Exited reports whether service name stopped by itself (it failed), and
// with what error.
func (s *Stack) Exited(name string) (bool, error) {
	s.mu.Lock()
	r, ok := s.services[name]
	s.mu.Unlock()
	if !ok {
		return false, nil
	}
	if err := r.exited.Load(); err != nil {
		return true, *err
	}
	return false, nil
}

// StopService stops service name and waits until it has shut down.
func (s *Stack) StopService(name string) error {
	s.mu.Lock()
	r, ok := s.services[name]
	delete(s.services, name)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("service %s is not running", name)
	}
	r.cancel()
	if err := <-r.done; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("service %s: %w", name, err)
	}
	return nil
}

// Close stops the services, then the relays.
func (s *Stack) Close() {
	s.mu.Lock()
	names := make([]string, 0, len(s.services))
	for n := range s.services {
		names = append(names, n)
	}
	s.mu.Unlock()
	for _, n := range names {
		if err := s.StopService(n); err != nil {
			s.log.Warn("stop service", "service", n, "err", err)
		}
	}
	s.cancel()
	s.wg.Wait()
	if s.relays != nil {
		s.relays.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.stopTP(ctx); err != nil {
		s.log.Warn("flush relay traces", "err", err)
	}
}

func (st *Stack) serviceSpec(name string) (ServiceSpec, bool) {
	for _, s := range st.cfg.Services {
		if s.Name == name {
			return s, true
		}
	}
	return ServiceSpec{}, false
}
