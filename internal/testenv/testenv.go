// Package testenv gives tests the real components: a PostgreSQL server with a
// fresh, migrated database per test, and an in-process Kafka-protocol broker
// (kfake) persisted to a temporary data directory.
//
// The server is the one at TEST_DATABASE_URL (a superuser URL) when that is
// set; otherwise one local cluster is started for the whole test binary on
// first use and stopped by Main.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sagabox/sagabox/internal/pgcluster"
	"github.com/sagabox/sagabox/migrations"
)

var (
	serverOnce sync.Once
	serverURL  *url.URL
	serverErr  error
	cluster    *pgcluster.Cluster
	clusterDir string
)

// Main runs the tests of a package and stops the cluster it may have started.
// Call it from TestMain: `func TestMain(m *testing.M) { testenv.Main(m) }`.
func Main(m *testing.M) {
	code := m.Run()
	stopHeld()
	if cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := cluster.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "testenv:", err)
		}
		cancel()
		os.RemoveAll(clusterDir)
	}
	os.Exit(code)
}

func server(t testing.TB) *url.URL {
	t.Helper()
	serverOnce.Do(func() {
		if raw := os.Getenv("TEST_DATABASE_URL"); raw != "" {
			serverURL, serverErr = url.Parse(raw)
			return
		}
		port, err := pgcluster.FreePort()
		if err != nil {
			serverErr = err
			return
		}
		clusterDir, err = os.MkdirTemp("", "sagabox-testpg-")
		if err != nil {
			serverErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cluster, err = pgcluster.Start(ctx, pgcluster.Config{
			Dir: filepath.Join(clusterDir, "data"), Port: port,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			serverErr = err
			return
		}
		serverURL, serverErr = url.Parse(cluster.AdminURL("postgres"))
	})
	if serverErr != nil {
		t.Fatalf("testenv: postgres: %v", serverErr)
	}
	u := *serverURL
	return &u
}

// Name returns a short random identifier usable in database, slot and
// consumer-group names.
func Name(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// Database creates an empty database for this test, migrated with schema (nil
// for none), and returns its superuser URL. It is dropped when the test ends.
func Database(t testing.TB, schema migrations.Schema) string {
	t.Helper()
	return createDatabase(t, server(t), schema)
}

// createDatabase creates a database migrated with schema on the server admin
// (a superuser URL) for this test.
func createDatabase(t testing.TB, admin *url.URL, schema migrations.Schema) string {
	t.Helper()
	ctx := context.Background()
	name := Name("t")
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		t.Fatalf("testenv: connect admin: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	u := *admin
	u.Path = "/" + name
	dbURL := u.String()
	t.Cleanup(func() { dropDatabase(admin.String(), name) })
	if schema != nil {
		pool, err := pgxpool.New(ctx, dbURL)
		if err != nil {
			t.Fatalf("testenv: open %s: %v", name, err)
		}
		defer pool.Close()
		if err := migrations.Up(ctx, pool, schema); err != nil {
			t.Fatalf("testenv: migrate %s: %v", name, err)
		}
	}
	return dbURL
}

func dropDatabase(adminURL, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	// Replication slots pin a database; drop the inactive ones first.
	_, _ = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
		WHERE database = $1 AND NOT active`, name)
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
}

// Pool opens a pool on dbURL, closed when the test ends.
func Pool(t testing.TB, dbURL string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatalf("testenv: open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Kafka starts an in-process Kafka-protocol broker persisted under a
// temporary directory and returns its bootstrap address. Topics are created
// on first use. It is shut down when the test ends.
func Kafka(t testing.TB, opts ...kfake.Opt) (addr string, c *kfake.Cluster) {
	t.Helper()
	base := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DataDir(t.TempDir()),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(4),
	}
	c, err := kfake.NewCluster(append(base, opts...)...)
	if err != nil {
		t.Fatalf("testenv: start kafka: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0], c
}

// Eventually polls cond every 20ms until it returns true or timeout passes,
// then fails the test with msg.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: "+msg, append([]any{timeout}, args...)...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Querier is what the read helpers need: a pool or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// OutboxEvent is a row of a service's outbox table with its payload
// decoded into P.
type OutboxEvent[P any] struct {
	AggregateType string
	AggregateID   string
	Type          string
	Payload       P
}

// Outbox reads the outbox table through q, oldest row first (rows written
// by one transaction in id order).
func Outbox[P any](t testing.TB, q Querier) []OutboxEvent[P] {
	t.Helper()
	const sql = `SELECT aggregatetype, aggregateid, type, payload FROM outboxevent ORDER BY created_at, id`
	rows, err := q.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("testenv: read outbox: %v", err)
	}
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OutboxEvent[P], error) {
		var (
			e       OutboxEvent[P]
			payload []byte
		)
		if err := r.Scan(&e.AggregateType, &e.AggregateID, &e.Type, &payload); err != nil {
			return e, err
		}
		return e, json.Unmarshal(payload, &e.Payload)
	})
	if err != nil {
		t.Fatalf("testenv: read outbox: %v", err)
	}
	return events
}

// AwaitLockWait waits until the backend with pid (a transaction's
// connection: tx.Conn().PgConn().PID()) is blocked waiting for a lock, as
// pg_stat_activity shows it, or fails the test with what. It is how a test
// makes a race between two transactions happen in a chosen order without
// sleeping.
func AwaitLockWait(t testing.TB, q Querier, pid uint32, what string) {
	t.Helper()
	Eventually(t, 10*time.Second, func() bool {
		rows, err := q.Query(context.Background(), `SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1`, pid)
		if err != nil {
			return false
		}
		wait, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[*string])
		return err == nil && wait != nil && *wait == "Lock"
	}, "%s (pid %d) never waited for a lock", what, pid)
}
