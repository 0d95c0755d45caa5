// Package platform is the wiring the three services share: configuration
// from the environment, logging, the database pool (with migrations), the
// Kafka producer-less consumer setup, the HTTP server with graceful shutdown,
// /healthz, JSON responses and outbox pruning. It holds no business logic.
package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/sagabox/sagabox/migrations"
)

// Config is what every service reads from its environment.
type Config struct {
	Name        string      // service name, e.g. "order-service"
	HTTPAddr    string      // HTTP_ADDR
	DatabaseURL string      // DATABASE_URL
	Brokers     []string    // KAFKA_BROKERS, comma-separated
	Migrate     bool        // MIGRATE: apply migrations at start
	Retention   Retention   // how long what only grows is kept (see Retention)
	LogLevel    slog.Level  // LOG_LEVEL: debug, info, warn, error
	Instance    string      // SERVICE_INSTANCE: this instance's unique name among its service's (static group membership)
	AdminTokens AdminTokens // ADMIN_TOKEN, ADMIN_READ_TOKEN: name:token pairs opening /admin to operators, to readers (see ParseTokens); never logged
}

// LocalDefaults is the configuration of service ("order", "customer",
// "payment") on the local stack of `make run`: its database and role on
// the local cluster (port 54320), the embedded broker on 9092.
func LocalDefaults(service, httpAddr string) Config {
	return Config{
		Name:     service + "-service",
		HTTPAddr: httpAddr,
		DatabaseURL: fmt.Sprintf("postgres://%[1]suser:%[1]spw@localhost:54320/%[1]sdb?sslmode=disable",
			service),
		Brokers:   []string{"localhost:9092"},
		Migrate:   true,
		Retention: DefaultRetention(),
	}
}

// LoadConfig reads the environment through getenv, falling back to def for
// unset variables, and reports every invalid value at once.
func LoadConfig(getenv func(string) string, def Config) (Config, error) {
	c := def
	var errs []error
	str := func(key string, dst *string) {
		if v := getenv(key); v != "" {
			*dst = v
		}
	}
	str("HTTP_ADDR", &c.HTTPAddr)
	str("DATABASE_URL", &c.DatabaseURL)
	str("SERVICE_INSTANCE", &c.Instance)
	if v := getenv("KAFKA_BROKERS"); v != "" {
		c.Brokers = splitList(v)
	}
	if v := getenv("MIGRATE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("MIGRATE=%q: want true or false", v))
		}
		c.Migrate = b
	}
	if err := c.Retention.load(getenv); err != nil {
		errs = append(errs, err)
	}
	if v := getenv("LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			errs = append(errs, fmt.Errorf("LOG_LEVEL=%q: want debug, info, warn or error", v))
		}
	}
	if ops, readers := getenv("ADMIN_TOKEN"), getenv("ADMIN_READ_TOKEN"); ops != "" || readers != "" {
		t, err := ParseTokens(ops, readers)
		if err != nil {
			errs = append(errs, err)
		}
		c.AdminTokens = t
	}
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("HTTP_ADDR is empty"))
	}
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is empty"))
	} else if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
		errs = append(errs, errors.New("DATABASE_URL is not a valid postgres URL"))
	}
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("KAFKA_BROKERS is empty"))
	}
	return c, errors.Join(errs...)
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// NewLogger returns a JSON logger tagged with the service name.
func NewLogger(w io.Writer, c Config) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: c.LogLevel})).With("service", c.Name)
}

// OpenDB connects to the service database, waiting for it to come up (it may
// start after the service, as in docker compose), and applies schema when
// c.Migrate is set.
func OpenDB(ctx context.Context, c Config, schema migrations.Schema, tp trace.TracerProvider, log *slog.Logger) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(c.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	pcfg.ConnConfig.Tracer = dbTracer(tp)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	for attempt := 1; ; attempt++ {
		err = pool.Ping(ctx)
		if err == nil {
			break
		}
		if attempt%10 == 1 {
			log.WarnContext(ctx, "database not ready, retrying", "attempt", attempt, "err", err)
		}
		select {
		case <-ctx.Done():
			pool.Close()
			return nil, fmt.Errorf("wait for database: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
	if c.Migrate {
		if err := migrations.Up(ctx, pool, schema); err != nil {
			pool.Close()
			return nil, err
		}
	}
	return pool, nil
}

// Serve runs an HTTP server with DefaultHTTPLimits on c.HTTPAddr until ctx
// ends, then shuts it down gracefully within 10s.
func Serve(ctx context.Context, c Config, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.HTTPAddr, err)
	}
	srv := NewHTTPServer(h, DefaultHTTPLimits())
	srv.BaseContext = func(net.Listener) context.Context { return context.WithoutCancel(ctx) }
	log.InfoContext(ctx, "http server listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down http server: %w", err)
	}
	return nil
}

// HealthCheck answers 200 when the database and Kafka both answer, 503
// otherwise. Kafka is checked once its client is set (before the service
// serves requests).
type HealthCheck struct {
	Pool  *pgxpool.Pool
	Kafka *kgo.Client
}

func (h *HealthCheck) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status := map[string]string{"database": "ok", "kafka": "ok"}
	code := http.StatusOK
	if err := h.Pool.Ping(ctx); err != nil {
		status["database"], code = err.Error(), http.StatusServiceUnavailable
	}
	if err := h.Kafka.Ping(ctx); err != nil {
		status["kafka"], code = err.Error(), http.StatusServiceUnavailable
	}
	WriteJSON(w, code, status)
}

// WriteJSON writes v as a JSON response with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes {"error": msg} with status code.
func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, map[string]string{"error": msg})
}
