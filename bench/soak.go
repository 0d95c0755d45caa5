package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The soak (`make soak`, -soak D): orders at -soak-rate for D with every
// retention a few minutes, and the size of every table at the start, after
// the first retention period (the longest retention, plus a minute for the
// pruners and autovacuum to catch up) and at the end: once the retentions
// have turned over, what is removed keeps pace with what is written.

// soakRetentions are the retentions of the soak, each outlasting the one
// before it as the services require.
var soakRetentions = []string{
	"OUTBOX_RETENTION=1m", "KAFKA_TOPIC_RETENTION=2m", "CONSUMED_RETENTION=3m", "SAGA_RETENTION=4m",
	"STEP_RECORD_RETENTION=5m", "PARKED_RETENTION=5m", "IDEMPOTENCY_KEY_TTL=5m",
}

// soakSettled is when the first retention period is over: the longest
// retention, and a minute.
const soakSettled = 6 * time.Minute

func runSoak(ctx context.Context, o options, bin string, stdout io.Writer) error {
	if o.soak <= soakSettled {
		return fmt.Errorf("a soak shorter than %s never sees the retentions turn over", soakSettled)
	}
	dataDir := filepath.Join(o.work, "data-soak")
	s, err := startSystem(ctx, bin, dataDir, "none", append(slices.Clone(soakRetentions), o.env...))
	if err != nil {
		return err
	}
	defer s.stop()
	dbs, closeDBs, err := s.serviceDBs(ctx, 2)
	if err != nil {
		return err
	}
	defer closeDBs()
	if err := seedCustomers(ctx, dbs["customerdb"]); err != nil {
		return err
	}
	start, err := tableSizes(ctx, dbs)
	if err != nil {
		return err
	}
	began := time.Now()
	failed := make(chan int64, 1)
	go func() { failed <- offer(ctx, s.orderURL, o.soakRate, o.soak) }()
	fmt.Fprintf(os.Stderr, "bench: soak: %.0f orders/s for %s\n", o.soakRate, o.soak)
	if err := sleep(ctx, soakSettled); err != nil {
		return err
	}
	settled, err := tableSizes(ctx, dbs)
	if err != nil {
		return err
	}
	if err := sleep(ctx, time.Until(began.Add(o.soak))); err != nil {
		return err
	}
	if n := <-failed; n > 0 {
		return fmt.Errorf("%d orders of the soak failed", n)
	}
	end, err := tableSizes(ctx, dbs)
	if err != nil {
		return err
	}
	h, err := checkHealth(ctx, s)
	if err != nil {
		return err
	}
	var sagas int64
	if err := dbs["orderdb"].QueryRow(ctx, `SELECT coalesce(sum(n), 0)::bigint FROM (SELECT n FROM saga_count UNION ALL SELECT n FROM saga_count_change) c`).Scan(&sagas); err != nil {
		return err
	}
	host, _ := os.Hostname()
	fmt.Fprintf(stdout, "sagabox soak, %s, %s, %d cores; %.0f orders/s for %s with %s; tracing off, fsync on\n",
		time.Now().UTC().Format(time.RFC3339), host, numCPU(), o.soakRate, o.soak, strings.Join(soakRetentions, " "))
	fmt.Fprintf(stdout, "at the end: %d sagas kept (about %.0f placed), %d deadline actions, %d parked\n\n",
		sagas, o.soakRate*o.soak.Seconds(), h.deadlines, h.parked)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "table (with indexes)\tstart kB\tafter %s kB\tend kB\tend ÷ after\t\n", soakSettled)
	for _, name := range slices.Sorted(maps.Keys(settled)) {
		ratio := float64(end[name]) / float64(max(settled[name], 1))
		flag := ""
		if ratio > 1.1 || ratio < 0.9 {
			flag = " !"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f%s\t\n", name, start[name]/1024, settled[name]/1024, end[name]/1024, ratio, flag)
	}
	return tw.Flush()
}

// tableSizes returns the size of every table of the databases, indexes and
// TOAST included, by "database.table".
func tableSizes(ctx context.Context, dbs map[string]*pgxpool.Pool) (map[string]int64, error) {
	out := map[string]int64{}
	for db, pool := range dbs {
		rows, _ := pool.Query(ctx, `SELECT relname, pg_total_relation_size(oid) FROM pg_class
			WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace`)
		var (
			name string
			size int64
		)
		if _, err := pgx.ForEachRow(rows, []any{&name, &size}, func() error {
			out[strings.TrimSuffix(db, "db")+"."+name] = size
			return nil
		}); err != nil {
			return nil, fmt.Errorf("table sizes of %s: %w", db, err)
		}
	}
	return out, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
