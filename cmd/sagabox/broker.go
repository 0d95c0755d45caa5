package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/sagabox/sagabox/internal/broker"
	"github.com/sagabox/sagabox/internal/metrics"
	"github.com/sagabox/sagabox/internal/platform"
)

// runBroker runs the embedded Kafka-protocol broker until ctx ends: what
// `sagabox up` runs as its "broker" component.
func runBroker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("data", ".data/kafka", "data directory")
	port := fs.Int("port", 9092, "port to listen on")
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9102", "listen address of GET /metrics")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stdout, nil)).With("service", "broker")
	platform.ServePprof(ctx, os.Getenv("PPROF_ADDR"), log)
	// The metrics read the broker's logs through a client of its own port.
	self, err := kgo.NewClient(kgo.SeedBrokers(net.JoinHostPort("127.0.0.1", strconv.Itoa(*port))))
	if err != nil {
		return fmt.Errorf("broker metrics client: %w", err)
	}
	defer self.Close()
	reg := metrics.NewRegistry()
	metrics.RegisterBroker(reg, self)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return platform.Serve(ctx, platform.Config{HTTPAddr: *metricsAddr}, metrics.Mux(reg), log)
	})
	g.Go(func() error { return broker.Run(ctx, broker.Config{Dir: *dir, Port: *port, Logger: log}) })
	return g.Wait()
}
