package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/pgcluster"
	"github.com/sagabox/sagabox/internal/supervisor"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/relay"
	"github.com/sagabox/sagabox/registry"
)

// upConfig is what `sagabox up` is told by its flags.
type upConfig struct {
	dataDir                     string
	fresh                       bool
	pgPort                      int
	kafkaPort                   int
	connectors                  string
	jaegerBin                   string
	addrs                       map[string]string // service → listen address of its first instance
	instances                   map[string]int    // service → number of instances
	console                     string            // the console's listen address
	relayMetrics, brokerMetrics string            // listen addresses of their GET /metrics
	pprof                       int               // first port of the components' pprof listeners, 0 for none
}

func parseUp(args []string, stderr io.Writer) (upConfig, error) {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := upConfig{addrs: map[string]string{}, instances: map[string]int{}}
	broker, _ := registry.Lookup("broker")
	console, _ := registry.Lookup("console")
	fs.StringVar(&c.dataDir, "data", ".data", "directory for Postgres, Kafka and run data")
	fs.BoolVar(&c.fresh, "fresh", false, "delete the data directory first")
	fs.IntVar(&c.pgPort, "pg-port", 54320, "Postgres port")
	fs.IntVar(&c.kafkaPort, "kafka-port", broker.Port, "Kafka port")
	fs.StringVar(&c.connectors, "connectors", "debezium/connectors", "Debezium connector files the relay reads")
	fs.StringVar(&c.jaegerBin, "jaeger", "bin/jaeger", "Jaeger binary (skipped when missing)")
	fs.IntVar(&c.pprof, "pprof", 0, "serve each component's Go profiles on 127.0.0.1, from this port up (0: off)")
	// Loopback by default: the services' APIs (payments, customers' limits)
	// are not for the network; -order-addr :8080 opens one wider.
	addrs := map[string]*string{}
	for _, svc := range registry.Services() {
		c.instances[svc.Name] = svc.Instances
		addrs[svc.Name] = fs.String(svc.Name+"-addr", "127.0.0.1:"+strconv.Itoa(svc.Port),
			svc.Name+" service listen address (instance k listens 10(k-1) ports higher)")
	}
	fs.StringVar(&c.console, "console-addr", "127.0.0.1:"+strconv.Itoa(console.Port), "the console's (dashboard's) listen address")
	fs.StringVar(&c.relayMetrics, "relay-metrics-addr", "127.0.0.1:9101", "the relay's /metrics listen address")
	fs.StringVar(&c.brokerMetrics, "broker-metrics-addr", "127.0.0.1:9102", "the broker's /metrics listen address")
	fs.Func("instances", "instances of a service, e.g. payment=2 (repeatable, or comma-separated)", func(v string) error {
		for item := range strings.SplitSeq(v, ",") {
			name, n, ok := strings.Cut(strings.TrimSpace(item), "=")
			count, err := strconv.Atoi(n)
			if _, known := c.instances[name]; !ok || !known || err != nil || count < 1 || count > 9 {
				return fmt.Errorf("%q: want service=count, service one of %s, count 1..9", item, strings.Join(registry.ServiceNames(), ", "))
			}
			c.instances[name] = count
		}
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return upConfig{}, err
	}
	for name, addr := range addrs {
		c.addrs[name] = *addr
	}
	return c, nil
}

// up runs the whole system locally, each component its own process: a
// dedicated Postgres cluster (data under -data), the embedded Kafka broker
// (`sagabox broker`), the relay (`sagabox relay`), every instance of the
// three services (`sagabox order` …) and Jaeger when bin/jaeger exists. A
// component that dies is restarted; so is Postgres. Ctrl-C stops them all.
func up(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseUp(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if cfg.fresh {
		if err := pgcluster.StopDir(ctx, filepath.Join(cfg.dataDir, "pg")); err != nil {
			return fmt.Errorf("stop the old cluster: %w", err)
		}
		if err := os.RemoveAll(cfg.dataDir); err != nil {
			return fmt.Errorf("remove %s: %w", cfg.dataDir, err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the sagabox binary: %w", err)
	}
	connectors, err := relay.LoadConnectors(cfg.connectors)
	if err != nil {
		return err
	}

	pgcfg := pgcluster.Config{Dir: filepath.Join(cfg.dataDir, "pg"), Port: cfg.pgPort, Durable: true, Logger: log}
	pg, err := pgcluster.Start(ctx, pgcfg)
	if err != nil {
		return err
	}
	defer func() {
		if err := pg.Stop(context.WithoutCancel(ctx)); err != nil {
			log.Error("stop postgres", "err", err)
		}
	}()
	dbURLs, err := prepareDatabases(ctx, pg, connectors)
	if err != nil {
		return err
	}
	adminToken, tokenFile, err := secretToken(cfg.dataDir, "admin-token", "ADMIN_TOKEN", getenv)
	if err != nil {
		return err
	}
	// The console reads with a token of its own, which the services accept
	// for reads only: an operator's action takes the operator's token.
	consoleToken, _, err := secretToken(cfg.dataDir, "console-token", "CONSOLE_TOKEN", getenv)
	if err != nil {
		return err
	}
	cardEnv, cardKeysFrom, err := cardKeysEnv(cfg.dataDir, getenv)
	if err != nil {
		return err
	}

	sup := supervisor.New(supervisor.Config{
		Binary: exe, Output: stdout, Logger: log, RunDir: filepath.Join(cfg.dataDir, "run"),
		// The card keys go to the order and payment services only.
		Env: withoutCardKeys(os.Environ()),
	})
	defer sup.Stop() // most recently started first: services, relay, broker
	var profiles strings.Builder
	nextPprof := cfg.pprof
	start := func(spec supervisor.Spec) error {
		if nextPprof > 0 {
			addr := "127.0.0.1:" + strconv.Itoa(nextPprof)
			spec.Env = append(spec.Env, "PPROF_ADDR="+addr)
			fmt.Fprintf(&profiles, "  pprof %-11s http://%s/debug/pprof/\n", spec.Name, addr)
			nextPprof++
		}
		return sup.Start(spec)
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go watchPostgres(watchCtx, pgcfg, log)

	brokerAddr := "127.0.0.1:" + strconv.Itoa(cfg.kafkaPort)
	if err := start(supervisor.Spec{Name: "broker", Args: []string{"broker",
		"-data", filepath.Join(cfg.dataDir, "kafka"), "-port", strconv.Itoa(cfg.kafkaPort),
		"-metrics-addr", cfg.brokerMetrics}}); err != nil {
		return err
	}
	if err := waitPort(ctx, brokerAddr, time.Minute); err != nil {
		return fmt.Errorf("kafka broker: %w", err)
	}

	otlp, jaegerQuery := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), getenv("JAEGER_QUERY_URL")
	jaegerMsg := "not running (build it with `make jaeger`)"
	if otlp == "" {
		if err := startJaeger(ctx, sup, cfg); err != nil {
			log.Warn("jaeger not started; tracing is off", "err", err)
		} else {
			otlp, jaegerQuery = "http://127.0.0.1:4318", "http://127.0.0.1:16686"
			jaegerMsg = "http://localhost:16686/api/traces?service=order-service (API; `go run ./cmd/sagabox trace ORDER_ID`)"
		}
	}
	common := []string{"KAFKA_BROKERS=" + brokerAddr, "OTEL_EXPORTER_OTLP_ENDPOINT=" + otlp}

	if err := start(supervisor.Spec{Name: "relay", Args: []string{"relay"}, Env: append(slices.Clone(common),
		"CONNECTORS_DIR="+cfg.connectors, "RELAY_DATABASE_HOST=127.0.0.1", "RELAY_DATABASE_PORT="+strconv.Itoa(cfg.pgPort),
		"METRICS_ADDR="+cfg.relayMetrics)}); err != nil {
		return err
	}
	var urls []string
	serviceURLs := map[string][]string{}
	var participants []string // name=url,url of each participant, for the console
	var banner strings.Builder
	for _, svc := range registry.Services() {
		for k := 1; k <= cfg.instances[svc.Name]; k++ {
			addr, err := instanceAddr(cfg.addrs[svc.Name], k)
			if err != nil {
				return fmt.Errorf("-%s-addr: %w", svc.Name, err)
			}
			name := fmt.Sprintf("%s-%d", svc.Name, k)
			env := append(slices.Clone(common), "HTTP_ADDR="+addr, "DATABASE_URL="+dbURLs[svc.Database],
				"MIGRATE=false", "ADMIN_TOKEN="+adminToken, "ADMIN_READ_TOKEN=console:"+consoleToken, "SERVICE_INSTANCE="+name)
			if svc.CardKeys {
				env = append(env, cardEnv...)
			}
			if err := start(supervisor.Spec{Name: name, Args: []string{svc.Name}, Env: env}); err != nil {
				return err
			}
			urls = append(urls, baseURL(addr))
			serviceURLs[svc.Name] = append(serviceURLs[svc.Name], baseURL(addr))
			fmt.Fprintf(&banner, "  %-17s %s\n", name, baseURL(addr))
		}
		if svc.Role == registry.Participant {
			participants = append(participants, svc.Name+"="+strings.Join(serviceURLs[svc.Name], ","))
		}
	}
	if err := start(supervisor.Spec{Name: "console", Args: []string{"console"}, Env: []string{
		"HTTP_ADDR=" + cfg.console, "CONSOLE_TOKEN=" + consoleToken, "JAEGER_QUERY_URL=" + jaegerQuery,
		"ORDER_URLS=" + strings.Join(serviceURLs["order"], ","),
		"PARTICIPANT_URLS=" + strings.Join(participants, ";"),
	}}); err != nil {
		return err
	}
	urls = append(urls, baseURL(cfg.console))
	for _, u := range urls {
		if err := waitHealthy(ctx, u+"/healthz"); err != nil {
			if ctx.Err() != nil {
				return nil // Ctrl-C during start
			}
			return err
		}
	}
	tokenHint := "from your ADMIN_TOKEN"
	if tokenFile != "" {
		tokenHint = "export ADMIN_TOKEN=$(cat " + tokenFile + ")"
	}
	fmt.Fprintf(stderr, `
sagabox is up (Ctrl-C stops it; data in %s; one process per component, restarted when it dies)

  console           %s   the dashboard: sagas, timelines, traces, actions
%s  postgres          postgres://postgres@127.0.0.1:%d (orderdb, customerdb, paymentdb);
                    PGPASSWORD=$(cat %s) psql -h 127.0.0.1 -p %d -U postgres
  kafka             %s
  jaeger            %s
  admin token       %s
  card keys         %s (order and payment services only)
  metrics           GET /metrics of every service and the console; relay %s, broker %s
%s
  curl -XPOST localhost:8080/orders -H 'Content-Type: application/json' -d @requests/place-order.json
  curl -H "Authorization: Bearer $ADMIN_TOKEN" localhost:8080/admin/sagas

`, cfg.dataDir, baseURL(cfg.console), banner.String(), cfg.pgPort, pg.PasswordFile(), cfg.pgPort, brokerAddr, jaegerMsg, tokenHint, cardKeysFrom,
		baseURL(cfg.relayMetrics)+"/metrics", baseURL(cfg.brokerMetrics)+"/metrics", profiles.String())
	<-ctx.Done()
	log.Info("shutting down")
	return nil
}

// prepareDatabases creates each connector's role and database when missing
// and migrates the three service databases once, before any service starts.
func prepareDatabases(ctx context.Context, pg *pgcluster.Cluster, connectors []relay.Connector) (map[string]string, error) {
	dbURLs := map[string]string{}
	for _, c := range connectors {
		if err := pg.EnsureDatabase(ctx, c.DBName, c.User, c.Password); err != nil {
			return nil, err
		}
		dbURLs[c.DBName] = fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", c.User, c.Password, pg.Port(), c.DBName)
	}
	for _, svc := range registry.Services() {
		pool, err := pgxpool.New(ctx, dbURLs[svc.Database])
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", svc.Database, err)
		}
		err = migrations.Up(ctx, pool, svc.Migrations)
		pool.Close()
		if err != nil {
			return nil, fmt.Errorf("migrate %s: %w", svc.Database, err)
		}
	}
	return dbURLs, nil
}

// secretToken returns a token: the environment variable env's (file ""),
// or the one in file <data>/name, generated (0600) on first use.
func secretToken(dataDir, name, env string, getenv func(string) string) (token, file string, err error) {
	if v := getenv(env); v != "" {
		return v, "", nil
	}
	file = filepath.Join(dataDir, name)
	if b, err := os.ReadFile(file); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), file, nil
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", "", fmt.Errorf("generate %s: %w", name, err)
	}
	token = hex.EncodeToString(raw)
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return "", "", fmt.Errorf("create %s: %w", dataDir, err)
	}
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("write %s: %w", name, err)
	}
	return token, file, nil
}

// watchPostgres restarts the cluster when it stops answering (killed, or
// stopped in immediate mode), until ctx ends.
func watchPostgres(ctx context.Context, cfg pgcluster.Config, log *slog.Logger) {
	addr := "127.0.0.1:" + strconv.Itoa(cfg.Port)
	down := 0
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			down = 0
			continue
		}
		if down++; down < 2 {
			continue
		}
		log.Warn("postgres is down; restarting it", "err", err)
		if _, err := pgcluster.Start(ctx, cfg); err != nil && ctx.Err() == nil {
			log.Error("restart postgres failed; trying again", "err", err)
			continue
		}
		down = 0
	}
}

// instanceAddr is the listen address of instance k of a service whose first
// instance listens on addr: 10(k-1) ports higher.
func instanceAddr(addr string, k int) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", fmt.Errorf("port %q: %w", port, err)
	}
	return net.JoinHostPort(host, strconv.Itoa(p+10*(k-1))), nil
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

// waitPort waits until addr accepts TCP connections.
func waitPort(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after %s: %w", addr, timeout, err)
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

// startJaeger runs the local Jaeger binary as a supervised component (its
// output in <data>/jaeger.log) and waits for its OTLP port.
func startJaeger(ctx context.Context, sup *supervisor.Supervisor, cfg upConfig) error {
	if _, err := os.Stat(cfg.jaegerBin); err != nil {
		return fmt.Errorf("%s missing (make jaeger builds it): %w", cfg.jaegerBin, err)
	}
	logFile, err := os.OpenFile(filepath.Join(cfg.dataDir, "jaeger.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open jaeger log: %w", err)
	}
	// Its in-memory store keeps the newest 2,000 traces (local.yaml); the
	// memory limit makes its garbage collector keep it near that.
	if err := sup.Start(supervisor.Spec{Name: "jaeger", Binary: cfg.jaegerBin,
		Args: []string{"--config", "deploy/jaeger/local.yaml"}, Env: []string{"GOMEMLIMIT=170MiB"}, Output: logFile}); err != nil {
		logFile.Close()
		return err
	}
	if err := waitPort(ctx, "127.0.0.1:4318", 20*time.Second); err != nil {
		_ = sup.StopChild("jaeger")
		return errors.Join(errors.New("jaeger did not open :4318"), err)
	}
	return nil
}
