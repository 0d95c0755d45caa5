package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sagabox/sagabox/internal/pgcluster"
	"github.com/sagabox/sagabox/internal/stack"
	"github.com/sagabox/sagabox/pkg/relay"
)

// up runs the whole system in this process: a dedicated Postgres cluster
// (data under -data), the embedded Kafka-protocol broker persisted beside
// it, Jaeger when bin/jaeger exists, the relays and the three services.
func up(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", ".data", "directory for Postgres and Kafka data")
	fresh := fs.Bool("fresh", false, "delete the data directory first")
	pgPort := fs.Int("pg-port", 54320, "Postgres port")
	kafkaPort := fs.Int("kafka-port", 9092, "Kafka port")
	connectorsDir := fs.String("connectors", "debezium/connectors", "Debezium connector files the relays read")
	jaegerBin := fs.String("jaeger", "bin/jaeger", "Jaeger binary (skipped when missing)")
	addrs := map[string]*string{
		"order":    fs.String("order-addr", ":8080", "order service listen address"),
		"customer": fs.String("customer-addr", ":8081", "customer service listen address"),
		"payment":  fs.String("payment-addr", ":8082", "payment service listen address"),
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	if *fresh {
		if err := pgcluster.StopDir(ctx, filepath.Join(*dataDir, "pg")); err != nil {
			return fmt.Errorf("stop the old cluster: %w", err)
		}
		if err := os.RemoveAll(*dataDir); err != nil {
			return fmt.Errorf("remove %s: %w", *dataDir, err)
		}
	}
	pg, err := pgcluster.Start(ctx, pgcluster.Config{Dir: filepath.Join(*dataDir, "pg"), Port: *pgPort, Durable: true, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := pg.Stop(context.WithoutCancel(ctx)); err != nil {
			log.Error("stop postgres", "err", err)
		}
	}()
	connectors, err := relay.LoadConnectors(*connectorsDir)
	if err != nil {
		return err
	}
	dbURLs := map[string]string{}
	for _, c := range connectors {
		if err := pg.EnsureDatabase(ctx, c.DBName, c.User, c.Password); err != nil {
			return err
		}
		dbURLs[c.DBName] = fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", c.User, c.Password, *pgPort, c.DBName)
	}

	broker, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(*kafkaPort),
		kfake.DataDir(filepath.Join(*dataDir, "kafka")),
		kfake.SyncWrites(),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(4),
	)
	if err != nil {
		return fmt.Errorf("start kafka broker on :%d: %w", *kafkaPort, err)
	}
	defer broker.Close()
	brokerAddr := "127.0.0.1:" + strconv.Itoa(*kafkaPort)

	otlp := getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	jaegerMsg := "not running (build it with `make jaeger`)"
	if otlp == "" {
		if stopJaeger, err := startJaeger(ctx, *jaegerBin, filepath.Join(*dataDir, "jaeger.log"), log); err != nil {
			log.Warn("jaeger not started; tracing is off", "err", err)
		} else {
			defer stopJaeger()
			otlp = "http://127.0.0.1:4318"
			jaegerMsg = "http://localhost:16686/api/traces?service=order-service (API; `go run ./cmd/sagabox trace ORDER_ID`)"
		}
	}
	env := func(k string) string {
		if k == "OTEL_EXPORTER_OTLP_ENDPOINT" {
			return otlp
		}
		return getenv(k)
	}

	st, err := stack.Start(ctx, stack.Config{
		ConnectorsDir: *connectorsDir,
		DatabaseURLs:  dbURLs,
		Brokers:       []string{brokerAddr},
		HTTPAddrs:     map[string]string{"order": *addrs["order"], "customer": *addrs["customer"], "payment": *addrs["payment"]},
		Env:           env,
		Stdout:        stdout,
		Logger:        log,
	})
	if err != nil {
		return err
	}
	defer st.Close()
	for _, name := range []string{"order", "customer", "payment"} {
		if err := waitHealthy(ctx, baseURL(*addrs[name])+"/healthz"); err != nil {
			if ctx.Err() != nil {
				return nil // Ctrl-C during start
			}
			return fmt.Errorf("%s service: %w", name, err)
		}
	}
	fmt.Fprintf(stderr, `
sagabox is up (Ctrl-C stops it; data in %s)
  order service     %s   POST /orders, GET /orders/{id}, GET /sagas/{id}
  customer service  %s   GET /customers/{id}
  payment service   %s   GET /payments?orderId={id}
  postgres          postgres://postgres@127.0.0.1:%d (orderdb, customerdb, paymentdb)
  kafka             %s
  jaeger            %s

  curl -XPOST localhost:8080/orders -H 'Content-Type: application/json' -d @requests/place-order.json

`, *dataDir, baseURL(*addrs["order"]), baseURL(*addrs["customer"]), baseURL(*addrs["payment"]), *pgPort, brokerAddr, jaegerMsg)
	<-ctx.Done()
	log.Info("shutting down")
	return nil
}

// waitHealthy polls url until it answers 200.
func waitHealthy(ctx context.Context, url string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy at %s after 2 minutes", url)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// baseURL turns a listen address (":8080") into a URL to call it.
func baseURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// startJaeger starts the local Jaeger binary and waits for its OTLP port.
func startJaeger(ctx context.Context, bin, logPath string, log *slog.Logger) (stop func(), err error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s missing (make jaeger builds it): %w", bin, err)
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create jaeger log: %w", err)
	}
	cmd := exec.Command(bin, "--config", "deploy/jaeger/local.yaml")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start jaeger: %w", err)
	}
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:4318", 200*time.Millisecond)
		if err == nil {
			conn.Close()
			log.Info("jaeger started", "log", logPath)
			return stop, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return nil, errors.Join(errors.New("jaeger did not open :4318"), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
