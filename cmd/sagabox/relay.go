package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sagabox/sagabox/internal/metrics"
	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/pkg/relay"
)

// relayConfig is `sagabox relay`'s configuration, from the environment.
type relayConfig struct {
	connectors []relay.Connector
	brokers    []string
	dbHost     string // replaces the connectors' database.hostname (a Docker host name)
	dbPort     int    // and database.port
	metrics    string // listen address of GET /metrics
	// topicRetention is the retention.ms of the topics the relays create.
	topicRetention time.Duration
}

// loadRelayConfig reads CONNECTORS_DIR (debezium/connectors), KAFKA_BROKERS
// (localhost:9092), RELAY_DATABASE_HOST (127.0.0.1), RELAY_DATABASE_PORT
// (54320), KAFKA_TOPIC_RETENTION (7d: the retention.ms of the topics it
// creates) and METRICS_ADDR (127.0.0.1:9101), reporting every problem at
// once.
func loadRelayConfig(getenv func(string) string) (relayConfig, error) {
	var errs []error
	cfg := relayConfig{dbHost: envOr(getenv, "RELAY_DATABASE_HOST", "127.0.0.1"),
		metrics: envOr(getenv, "METRICS_ADDR", "127.0.0.1:9101")}
	connectors, err := relay.LoadConnectors(envOr(getenv, "CONNECTORS_DIR", "debezium/connectors"))
	if err != nil {
		errs = append(errs, fmt.Errorf("CONNECTORS_DIR: %w", err))
	}
	cfg.connectors = connectors
	for b := range strings.SplitSeq(envOr(getenv, "KAFKA_BROKERS", "localhost:9092"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			cfg.brokers = append(cfg.brokers, b)
		}
	}
	if len(cfg.brokers) == 0 {
		errs = append(errs, errors.New("KAFKA_BROKERS: no broker"))
	}
	port, err := strconv.Atoi(envOr(getenv, "RELAY_DATABASE_PORT", "54320"))
	if err != nil || port <= 0 || port > 65535 {
		errs = append(errs, fmt.Errorf("RELAY_DATABASE_PORT=%q: want a port number", getenv("RELAY_DATABASE_PORT")))
	}
	cfg.dbPort = port
	cfg.topicRetention = platform.DefaultRetention().Topics
	if v := getenv("KAFKA_TOPIC_RETENTION"); v != "" {
		d, err := platform.ParseRetention(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("KAFKA_TOPIC_RETENTION=%q: %w", v, err))
		}
		cfg.topicRetention = d
	}
	return cfg, errors.Join(errs...)
}

// runRelay runs one relay per connector file, standalone, under a
// relay.Supervisor: what Debezium does in the Docker setup. It logs JSON to
// stdout, keeps retrying while Postgres or Kafka are unreachable, and
// returns an error only for a configuration error (nil when ctx ends).
func runRelay(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	log := slog.New(slog.NewJSONHandler(stdout, nil)).With("service", "relay")
	cfg, err := loadRelayConfig(getenv)
	if err != nil {
		return fmt.Errorf("relay configuration: %w", err)
	}
	tp, stopTracing, err := platform.NewTracerProvider(ctx, getenv, "outbox-relay")
	if err != nil {
		return fmt.Errorf("relay tracing: %w", err)
	}
	defer func() { _ = stopTracing(context.WithoutCancel(ctx)) }()
	connString := func(c relay.Connector) string {
		u, _ := url.Parse(c.ConnString()) // built by Connector: always parses
		u.Host = net.JoinHostPort(cfg.dbHost, strconv.Itoa(cfg.dbPort))
		return u.String()
	}
	reg := metrics.NewRegistry()
	published := metrics.NewRelay(reg)
	var slots []metrics.SlotSource
	for _, c := range cfg.connectors {
		slots = append(slots, metrics.SlotSource{Connector: c.Name, Slot: c.SlotName, ConnString: connString(c)})
	}
	closeSlots := metrics.RegisterSlots(reg, slots)
	defer closeSlots()
	sup, err := relay.NewSupervisor(relay.SupervisorConfig{
		Connectors: cfg.connectors,
		ConnString: connString,
		Brokers:    cfg.brokers,
		Logger:     log,
		Relay: relay.Config{TracerProvider: tp, Published: published.Published,
			TopicConfigs: platform.TopicConfigs(cfg.topicRetention)},
	})
	if err != nil {
		return err
	}
	defer sup.Close()
	platform.ServePprof(ctx, getenv("PPROF_ADDR"), log)
	log.InfoContext(ctx, "relay starting", "connectors", len(cfg.connectors), "kafka", cfg.brokers,
		"database", net.JoinHostPort(cfg.dbHost, strconv.Itoa(cfg.dbPort)))
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return platform.Serve(ctx, platform.Config{HTTPAddr: cfg.metrics}, metrics.Mux(reg), log)
	})
	g.Go(func() error { return sup.Run(ctx) })
	return g.Wait()
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
