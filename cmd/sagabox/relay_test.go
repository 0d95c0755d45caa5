package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/outbox"
)

// TestRelayCommandConfigErrors: `sagabox relay` fails, naming every
// problem, only when its configuration is wrong.
func TestRelayCommandConfigErrors(t *testing.T) {
	t.Parallel()
	env := map[string]string{"CONNECTORS_DIR": t.TempDir(), "RELAY_DATABASE_PORT": "x", "KAFKA_BROKERS": " , "}
	err := run(context.Background(), []string{"relay"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("sagabox relay accepted a bad configuration")
	}
	for _, want := range []string{"CONNECTORS_DIR", "no *.json files", "RELAY_DATABASE_PORT", "KAFKA_BROKERS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// gate forwards connections to target once opened; before, it accepts and
// closes them at once, like a Postgres that is not up yet.
type gate struct {
	ln     net.Listener
	target string
	open   atomic.Bool
}

func newGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			if !g.open.Load() {
				in.Close()
				continue
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	return g
}

// TestRelayCommandWaitsForPostgres: `sagabox relay` started while its
// database is unreachable logs and retries instead of exiting, then relays
// once the database is there, and stops with no error on cancellation.
func TestRelayCommandWaitsForPostgres(t *testing.T) {
	t.Parallel()
	dbURL := testenv.Database(t, migrations.Order())
	pool := testenv.Pool(t, dbURL)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	g := newGate(t, u.Host)
	host, port, _ := net.SplitHostPort(g.ln.Addr().String())
	pw, _ := u.User.Password()
	connector := map[string]string{
		"connector.class": "io.debezium.connector.postgresql.PostgresConnector", "database.hostname": "postgres",
		"database.port": "5432", "database.user": u.User.Username(), "database.password": pw,
		"database.dbname": strings.TrimPrefix(u.Path, "/"), "topic.prefix": "order", "plugin.name": "pgoutput",
		"slot.name": testenv.Name("slot"), "publication.name": "order_outbox", "publication.autocreate.mode": "filtered",
		"table.include.list": "public.outboxevent",
		"key.converter":      "org.apache.kafka.connect.storage.StringConverter", "value.converter": "org.apache.kafka.connect.storage.StringConverter",
		"transforms": "outbox", "transforms.outbox.type": "io.debezium.transforms.outbox.EventRouter",
		"transforms.outbox.route.topic.replacement": "${routedByValue}.request",
	}
	dir := t.TempDir()
	raw, _ := json.Marshal(connector)
	if err := os.WriteFile(filepath.Join(dir, "order-outbox.json"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	broker, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	env := map[string]string{"CONNECTORS_DIR": dir, "KAFKA_BROKERS": broker.ListenAddrs()[0], "METRICS_ADDR": "127.0.0.1:0",
		"RELAY_DATABASE_HOST": host, "RELAY_DATABASE_PORT": port}
	var stdout testenv.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"relay"}, func(k string) string { return env[k] }, &stdout, io.Discard)
	}()
	stop := sync.OnceValue(func() error { cancel(); return <-done })
	t.Cleanup(func() {
		_ = stop()
		_, _ = pool.Exec(context.Background(), `SELECT pg_drop_replication_slot($1)`, connector["slot.name"])
	})

	testenv.Eventually(t, 30*time.Second, func() bool { return strings.Count(stdout.String(), `"msg":"relay failed, restarting"`) >= 2 },
		"the relay retries while Postgres is unreachable")
	select {
	case err := <-done:
		t.Fatalf("sagabox relay exited while Postgres was down: %v", err)
	default:
	}
	g.open.Store(true)
	e := outbox.Event{AggregateType: "payment", AggregateID: "saga-1", Type: "REQUEST", Payload: []byte(`{}`)}
	if err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error { return outbox.Write(context.Background(), tx, e) }); err != nil {
		t.Fatal(err)
	}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(broker.ListenAddrs()[0]), kgo.ConsumeTopics("payment.request"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	fctx, fcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer fcancel()
	var got []*kgo.Record
	for len(got) == 0 && fctx.Err() == nil {
		got = append(got, consumer.PollFetches(fctx).Records()...)
	}
	if len(got) == 0 {
		t.Fatalf("no record relayed once Postgres was up; logs:\n%s", stdout.String())
	}
	if err := stop(); err != nil {
		t.Errorf("sagabox relay stopped with %v, want nil", err)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(stdout.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
}
