package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/pkg/relay"
)

// runRelay runs one outbox relay per connector file, standalone: what Debezium
// does in the Docker setup. RELAY_DATABASE_HOST / _PORT override the
// connectors' database.hostname / port (which name Docker hosts).
func runRelay(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	dir := envOr(getenv, "CONNECTORS_DIR", "debezium/connectors")
	brokers := strings.Split(envOr(getenv, "KAFKA_BROKERS", "localhost:9092"), ",")
	host := envOr(getenv, "RELAY_DATABASE_HOST", "127.0.0.1")
	port := envOr(getenv, "RELAY_DATABASE_PORT", "54320")
	log := slog.New(slog.NewJSONHandler(stdout, nil)).With("service", "relay")
	connectors, err := relay.LoadConnectors(dir)
	if err != nil {
		return err
	}
	tp, stopTracing, err := platform.NewTracerProvider(ctx, getenv, "outbox-relay")
	if err != nil {
		return fmt.Errorf("relay tracing: %w", err)
	}
	defer func() { _ = stopTracing(context.WithoutCancel(ctx)) }()
	g, ctx := errgroup.WithContext(ctx)
	for _, c := range connectors {
		producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation(),
			kgo.RecordDeliveryTimeout(30*time.Second))
		if err != nil {
			return fmt.Errorf("create kafka producer: %w", err)
		}
		defer producer.Close()
		u, err := url.Parse(c.ConnString())
		if err != nil {
			return fmt.Errorf("connector %s: %w", c.Name, err)
		}
		u.Host = host + ":" + port
		r, err := relay.NewRelay(relay.RelayConfig{Connector: c, ConnString: u.String(), Kafka: producer, Logger: log, TracerProvider: tp})
		if err != nil {
			return fmt.Errorf("connector %s: %w", c.Name, err)
		}
		g.Go(func() error { return r.Run(ctx) })
	}
	return g.Wait()
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
