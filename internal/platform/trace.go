package platform

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5"
)

// dbTracer returns the pgx query tracer (OpenTelemetry spans per query when
// tracing is configured).
func dbTracer() pgx.QueryTracer { return nil }

// StartTracing configures OpenTelemetry from the standard OTEL_* variables.
// It returns a function that flushes and stops it.
func StartTracing(ctx context.Context, getenv func(string) string, service string, log *slog.Logger) (func(), error) {
	return func() {}, nil
}

// HTTPHandler wraps h with server spans named by route pattern.
func HTTPHandler(h http.Handler) http.Handler { return h }
