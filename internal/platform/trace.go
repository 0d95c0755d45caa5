package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// NewTracerProvider configures OpenTelemetry tracing for service from the
// standard variables read through getenv: OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (OTLP over HTTP), OTEL_SERVICE_NAME
// (default service), OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG,
// OTEL_SDK_DISABLED. With no endpoint tracing is off: the returned provider
// is a no-op. The shutdown function flushes buffered spans.
//
// The provider is not installed globally: several services may share one
// process (sagabox up, the tests), each with its own service name.
func NewTracerProvider(ctx context.Context, getenv func(string) string, service string) (trace.TracerProvider, func(context.Context) error, error) {
	noopShutdown := func(context.Context) error { return nil }
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return noop.NewTracerProvider(), noopShutdown, nil
	}
	var opts []otlptracehttp.Option
	switch ep, base := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); {
	case ep != "":
		opts = append(opts, otlptracehttp.WithEndpointURL(ep))
	case base != "":
		opts = append(opts, otlptracehttp.WithEndpointURL(strings.TrimSuffix(base, "/")+"/v1/traces"))
	default:
		return noop.NewTracerProvider(), noopShutdown, nil
	}
	sampler, err := samplerFromEnv(getenv)
	if err != nil {
		return nil, nil, err
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("create otlp exporter: %w", err)
	}
	if name := getenv("OTEL_SERVICE_NAME"); name != "" {
		service = name
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(500*time.Millisecond)),
		sdktrace.WithSampler(sampler),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(service))),
	)
	return tp, tp.Shutdown, nil
}

func samplerFromEnv(getenv func(string) string) (sdktrace.Sampler, error) {
	arg := getenv("OTEL_TRACES_SAMPLER_ARG")
	ratio := 1.0
	if arg != "" {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%q: want a ratio between 0 and 1", arg)
		}
		ratio = r
	}
	switch s := getenv("OTEL_TRACES_SAMPLER"); s {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	default:
		return nil, errors.New("OTEL_TRACES_SAMPLER=" + s + ": unsupported sampler")
	}
}

// dbTracer returns the pgx query tracer: one span per query, in the trace
// of the request or message being handled.
func dbTracer(tp trace.TracerProvider) pgx.QueryTracer {
	return otelpgx.NewTracer(otelpgx.WithTracerProvider(tp), otelpgx.WithSpanNameFunc(sqlSpanName), otelpgx.WithDisableAcquireTracer())
}

var sqlTable = regexp.MustCompile(`(?is)^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM|SELECT\b.*?\bFROM)\s+"?([\w.]+)`)

// sqlSpanName names a query span by operation and table ("INSERT
// outboxevent", "SELECT sagastate"), falling back to the first keyword.
func sqlSpanName(stmt string) string {
	if m := sqlTable.FindStringSubmatch(stmt); m != nil {
		return strings.ToUpper(strings.Fields(m[1])[0]) + " " + m[2]
	}
	if f := strings.Fields(stmt); len(f) > 0 {
		return strings.ToUpper(f[0])
	}
	return "query"
}

// NameSpanByRoute is chi middleware that names the server span after the
// matched route pattern ("POST /orders", "GET /orders/{id}"). Routers Use it
// first; HTTPHandler starts the span around the router.
func NameSpanByRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		next.ServeHTTP(w, req)
		if pattern := chi.RouteContext(req.Context()).RoutePattern(); pattern != "" {
			span := trace.SpanFromContext(req.Context())
			span.SetName(req.Method + " " + pattern)
			span.SetAttributes(attribute.String("http.route", pattern))
		}
	})
}

// HTTPHandler wraps h with OpenTelemetry server spans (health checks and
// metrics scrapes are not traced). The incoming trace context is read in the W3C Trace Context
// format, the only one on the wire (outbox columns, Kafka headers, HTTP); no
// global propagator is consulted.
func HTTPHandler(h http.Handler, tp trace.TracerProvider) http.Handler {
	return otelhttp.NewHandler(h, "http.server",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithSpanNameFormatter(func(_ string, req *http.Request) string { return req.Method }),
		otelhttp.WithFilter(func(req *http.Request) bool { return req.URL.Path != "/healthz" && req.URL.Path != "/metrics" }),
	)
}

// logTracing reports where spans go.
func logTracing(ctx context.Context, log *slog.Logger, getenv func(string) string) {
	ep := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if ep == "" {
		ep = getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	if ep == "" {
		log.InfoContext(ctx, "tracing off (no OTEL_EXPORTER_OTLP_ENDPOINT)")
		return
	}
	log.InfoContext(ctx, "tracing on", "otlp_endpoint", ep)
}
