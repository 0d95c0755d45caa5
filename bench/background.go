package main

import (
	"context"
	"fmt"
)

// background is what the databases did besides the load, counted over a
// fixed-rate run: checkpoints, autovacuum and autoanalyze runs, and how far
// the relays were behind the WAL when it began.
type background struct {
	checkpoints, vacuums int64
	lagKB                int64 // at the start
}

func (b background) String() string {
	return fmt.Sprintf("%d checkpoints, %d autovacuum/autoanalyze runs, relays %d KB behind at the start", b.checkpoints, b.vacuums, b.lagKB)
}

// backgroundNow reads the cluster's counters of checkpoints and of
// autovacuum/autoanalyze runs (in every service database), and the
// replication slots' largest lag.
func backgroundNow(ctx context.Context, s *system) (background, error) {
	var b background
	for _, name := range []string{"orderdb", "customerdb", "paymentdb"} {
		db, err := s.db(ctx, name, 1)
		if err != nil {
			return b, err
		}
		var vacuums int64
		err = db.QueryRow(ctx, `SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0)::bigint FROM pg_stat_all_tables`).Scan(&vacuums)
		if err == nil && name == "orderdb" {
			err = db.QueryRow(ctx, `SELECT (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter),
				(SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)), 0)::bigint / 1024 FROM pg_replication_slots)`).
				Scan(&b.checkpoints, &b.lagKB)
		}
		db.Close()
		if err != nil {
			return b, fmt.Errorf("read %s's background counters: %w", name, err)
		}
		b.vacuums += vacuums
	}
	return b, nil
}
