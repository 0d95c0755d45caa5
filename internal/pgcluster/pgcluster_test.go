package pgcluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/internal/pgcluster"
	"github.com/sagabox/sagabox/internal/testenv"
)

// The server is stopped in immediate mode (all its processes gone at once,
// as in a power loss) and its postmaster.pid then names a live process that
// is not postgres — what a reboot makes likely. Start recovers: it removes
// the stale file, says so, and the committed data is there.
func TestStartAfterCrashWithStalePid(t *testing.T) {
	ctx := context.Background()
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	var logs testenv.Buffer
	cfg := pgcluster.Config{Dir: filepath.Join(t.TempDir(), "pg"), Port: port, Durable: true,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	pg, err := pgcluster.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pgcluster.StopDir(context.Background(), cfg.Dir) })
	exec := func(q string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, pg.AdminURL("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	exec(`CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)`)
	pidFile := filepath.Join(cfg.Dir, "postmaster.pid")
	saved, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.Crash(ctx); err != nil {
		t.Fatal(err)
	}
	// The file as the killed server left it, naming this (live) test process.
	_, rest, _ := strings.Cut(string(saved), "\n")
	if err := os.WriteFile(pidFile, []byte(fmt.Sprintf("%d\n%s", os.Getpid(), rest)), 0o600); err != nil {
		t.Fatal(err)
	}
	pg, err = pgcluster.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start after crash: %v\nlogs:\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "removed a stale postmaster.pid") {
		t.Errorf("no log line about the stale pid file:\n%s", logs.String())
	}
	conn, err := pgx.Connect(ctx, pg.AdminURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v int
	if err := conn.QueryRow(ctx, `SELECT v FROM kept`).Scan(&v); err != nil || v != 42 {
		t.Errorf("committed row after crash: %d, %v", v, err)
	}
}

// Over TCP the cluster asks everyone for a password: the superuser's is in
// a file only its owner reads, and a service role opens its own database
// and no other.
func TestClusterAsksForPasswords(t *testing.T) {
	ctx := context.Background()
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := pgcluster.Config{Dir: filepath.Join(dir, "pg"), Port: port, Logger: slog.New(slog.DiscardHandler)}
	pg, err := pgcluster.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pgcluster.StopDir(context.Background(), cfg.Dir) })
	for _, db := range []string{"onedb", "twodb"} {
		if err := pg.EnsureDatabase(ctx, db, strings.TrimSuffix(db, "db")+"user", "pw-"+db); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "postgres-password")
	if pg.PasswordFile() != file {
		t.Errorf("password file %s, want %s", pg.PasswordFile(), file)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v, mode %v; want 0600", err, fi.Mode())
	}
	pw, err := pgcluster.ReadPassword(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url    string
		wantOK bool
	}{
		{pgcluster.AdminURL(port, pw, "postgres"), true},
		{fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), false},
		{pgcluster.AdminURL(port, "wrong", "postgres"), false},
		{fmt.Sprintf("postgres://oneuser:pw-onedb@127.0.0.1:%d/onedb?sslmode=disable", port), true},
		{fmt.Sprintf("postgres://oneuser:pw-onedb@127.0.0.1:%d/twodb?sslmode=disable", port), false},
		{fmt.Sprintf("postgres://oneuser:pw-onedb@127.0.0.1:%d/postgres?sslmode=disable", port), false},
		{fmt.Sprintf("postgres://oneuser:pw-twodb@127.0.0.1:%d/onedb?sslmode=disable", port), false},
	} {
		conn, err := pgx.Connect(ctx, tc.url)
		if err == nil {
			conn.Close(ctx)
		}
		if (err == nil) != tc.wantOK {
			t.Errorf("connect %s: %v, want ok=%v", strings.Replace(tc.url, pw, "<pw>", 1), err, tc.wantOK)
		}
	}
	// A second start (the password file exists) keeps the password.
	pg, err = pgcluster.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, pg.AdminURL("postgres"))
	if err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	conn.Close(ctx)
}
