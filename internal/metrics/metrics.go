// Package metrics holds the Prometheus metrics of every sagabox component:
// their names, labels and help in one place, the hooks that feed them
// (consumer.Observer, saga.Observer, relay.Config.Published) and the
// collectors that read state when scraped (consumer lag, the outbox
// backlog, replication slots, the broker's logs).
//
// Every process builds its own registry with NewRegistry and passes it
// down; nothing here touches Prometheus' default registry, so several
// components can share a process (the tests, internal/stack) without
// clashing.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every sagabox metric.
const Namespace = "sagabox"

// scrapeTimeout bounds the queries a collector makes while scraped.
const scrapeTimeout = 3 * time.Second

// NewRegistry returns a registry with the Go runtime and process
// collectors: one per process (or per component sharing a process).
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves the metrics of g in the Prometheus text format. A
// collector that fails (the database away) is reported in the log of the
// response, and the other metrics are served anyway.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Serve serves GET /metrics of g on addr until ctx ends: the HTTP listener
// of the components that have no other (the relay, the broker).
func Serve(ctx context.Context, addr string, g prometheus.Gatherer, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler(g))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 15 * time.Second}
	log.InfoContext(ctx, "metrics listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down metrics server: %w", err)
	}
	return nil
}

// collectorFunc is a collector whose metrics are read when scraped; it
// describes nothing up front (an "unchecked" collector), which lets its
// label values come from what it reads.
type collectorFunc func(ch chan<- prometheus.Metric)

func (f collectorFunc) Describe(chan<- *prometheus.Desc)    {}
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }
