package testenv

import (
	"context"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/pgcluster"
	"github.com/sagabox/sagabox/migrations"
)

// The held-commit server: a local cluster of its own on which a session that
// asks for it (HoldCommits) has each of its commits written and flushed to
// the WAL — so logical decoding, the relay and Debezium stream it at once —
// but not made visible to other sessions until the test releases it
// (ReleaseHeld). It is PostgreSQL's own gap between flushing a commit and
// making it visible, held open: synchronous replication to a standby that
// never comes (synchronous_standby_names names one) makes a committing
// backend wait in between; every other session commits with
// synchronous_commit = local and never waits.
var (
	heldOnce    sync.Once
	heldCluster *pgcluster.Cluster
	heldDir     string
	heldErr     error
)

// HeldCommitDatabase creates a database on the held-commit server, migrated
// with schema (nil for none), and returns its superuser URL. It is dropped
// when the test ends; the server is stopped by Main.
func HeldCommitDatabase(t testing.TB, schema migrations.Schema) string {
	t.Helper()
	heldOnce.Do(func() {
		port, err := pgcluster.FreePort()
		if err != nil {
			heldErr = err
			return
		}
		if heldDir, err = os.MkdirTemp("", "sagabox-heldpg-"); err != nil {
			heldErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		heldCluster, err = pgcluster.Start(ctx, pgcluster.Config{Dir: filepath.Join(heldDir, "data"), Port: port,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			heldErr = err
			return
		}
		conn, err := pgx.Connect(ctx, heldCluster.AdminURL("postgres"))
		if err != nil {
			heldErr = err
			return
		}
		defer conn.Close(ctx)
		for _, q := range []string{
			`ALTER SYSTEM SET synchronous_commit = 'local'`,
			`ALTER SYSTEM SET synchronous_standby_names = 'never_comes'`,
			`SELECT pg_reload_conf()`,
		} {
			if _, heldErr = conn.Exec(ctx, q); heldErr != nil {
				return
			}
		}
	})
	if heldErr != nil {
		t.Fatalf("testenv: held-commit server: %v", heldErr)
	}
	u, err := url.Parse(heldCluster.AdminURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	return createDatabase(t, u, schema)
}

// HoldCommits makes the commits of the session conn (a connection to the
// held-commit server) wait, flushed but invisible to other sessions, until
// ReleaseHeld.
func HoldCommits(t testing.TB, conn *pgx.Conn) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), `SET synchronous_commit = 'on'`); err != nil {
		t.Fatalf("testenv: hold commits: %v", err)
	}
}

// HeldCommits returns how many sessions of db's server wait with a
// flushed, invisible commit.
func HeldCommits(t testing.TB, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'`).Scan(&n); err != nil {
		t.Fatalf("testenv: count held commits: %v", err)
	}
	return n
}

// ReleaseHeld makes every held commit visible: cancelling the wait of a
// transaction whose commit is flushed ends the wait, not the transaction
// (PostgreSQL warns that it "has already committed locally").
func ReleaseHeld(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'`); err != nil {
		t.Fatalf("testenv: release held commits: %v", err)
	}
}

func stopHeld() {
	if heldCluster == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = heldCluster.Stop(ctx)
	os.RemoveAll(heldDir)
}
