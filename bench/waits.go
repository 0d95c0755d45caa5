package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// waitSample is what Postgres' busy sessions were doing, sampled: per
// database and wait event ("CPU" when a session waited for nothing), the
// share of the samples.
type waitSample struct {
	db, event string
	share     float64 // of all the active sessions seen
}

// sampleWaits samples pg_stat_activity every 10 ms until ctx ends and
// returns the most frequent states of the active client sessions (the
// bench's own excepted): a profile of where the databases' time goes, lock
// waits and commit flushes included, which a CPU profile does not show.
func sampleWaits(ctx context.Context, db *pgxpool.Pool) []waitSample {
	counts := map[[2]string]int{}
	total := 0
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return topWaits(counts, total)
		case <-t.C:
		}
		rows, _ := db.Query(ctx, `SELECT datname, coalesce(wait_event_type || ':' || wait_event, 'CPU')
			FROM pg_stat_activity WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()`)
		var d, e string
		_, err := pgx.ForEachRow(rows, []any{&d, &e}, func() error {
			counts[[2]string{d, e}]++
			total++
			return nil
		})
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "bench: sample pg_stat_activity: %v\n", err)
		}
	}
}

func topWaits(counts map[[2]string]int, total int) []waitSample {
	out := make([]waitSample, 0, len(counts))
	for k, n := range counts {
		out = append(out, waitSample{db: k[0], event: k[1], share: float64(n) / float64(max(total, 1))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].share > out[j].share })
	return out[:min(len(out), 10)]
}
