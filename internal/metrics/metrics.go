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

// Mux serves GET /metrics of g: the whole HTTP interface of the components
// that have no other (the relay, the broker).
func Mux(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler(g))
	return mux
}

// collectorFunc is a collector whose metrics are read when scraped; it
// describes nothing up front (an "unchecked" collector), which lets its
// label values come from what it reads.
type collectorFunc func(ch chan<- prometheus.Metric)

func (f collectorFunc) Describe(chan<- *prometheus.Desc)    {}
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }
