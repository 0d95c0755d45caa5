package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"

	"github.com/sagabox/sagabox/internal/broker"
	"github.com/sagabox/sagabox/internal/platform"
)

// runBroker runs the embedded Kafka-protocol broker until ctx ends: what
// `sagabox up` runs as its "broker" component.
func runBroker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("data", ".data/kafka", "data directory")
	port := fs.Int("port", 9092, "port to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stdout, nil)).With("service", "broker")
	platform.ServePprof(ctx, os.Getenv("PPROF_ADDR"), log)
	return broker.Run(ctx, broker.Config{Dir: *dir, Port: *port, Logger: log})
}
