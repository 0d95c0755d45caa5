package saga

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// StatsQuery selects what ReadStats summarises.
type StatsQuery struct {
	Type string // saga type; "" every type
	// Window is how far back the buckets and percentiles reach, Bucket the
	// length of one bucket (Window/Bucket at most MaxBuckets).
	Window, Bucket time.Duration
	// StuckAfter: an ABORTING saga older than this counts as stuck (as in
	// Filter.StuckAfter); 0 counts only sagas past their deadline.
	StuckAfter time.Duration
}

// MaxBuckets bounds StatsQuery.Window / StatsQuery.Bucket.
const MaxBuckets = 240

// Stats summarises the sagas of one type: now, and over a recent window.
type Stats struct {
	At      time.Time        // the database's time of the reading
	ByState map[Status]int64 // sagas per status now (every status present)
	Stuck   int64            // past their deadline, or ABORTING longer than StuckAfter
	Buckets []Bucket         // oldest first; the last one holds At
	// Ended counts the sagas that reached a final status within the
	// window; P50 and P99 are percentiles of their time from start to that
	// status (zero when none ended).
	Ended    int64
	P50, P99 time.Duration
}

// Bucket counts what happened in [Start, Start+StatsQuery.Bucket).
type Bucket struct {
	Start     time.Time
	Started   int64 // sagas created
	Succeeded int64 // sagas that ended SUCCEEDED
	Aborted   int64 // sagas that ended ABORTED
}

// ReadStats reads the summary of q.Type's sagas from one snapshot of q.
// Sagas keep their final status (and the time they reached it,
// status_since), so a saga counts in the bucket in which it ended. It
// reads no more rows than the window holds: the counts per status come
// from the counts the transitions keep, the window from the indexes on
// creation and end times, stuck sagas from the deadline's and the running
// sagas' indexes.
func ReadStats(ctx context.Context, q Querier, sq StatsQuery) (Stats, error) {
	if sq.Bucket <= 0 || sq.Window < sq.Bucket || sq.Window/sq.Bucket > MaxBuckets {
		return Stats{}, fmt.Errorf("saga stats: window %s / bucket %s: want 1 to %d buckets", sq.Window, sq.Bucket, MaxBuckets)
	}
	st := Stats{ByState: map[Status]int64{StatusStarted: 0, StatusSucceeded: 0, StatusAborting: 0, StatusAborted: 0}}
	// Stuck: past a deadline (the deadline index), or ABORTING for too
	// long (the running sagas' index) — never the ended ones.
	const now = `SELECT now(),
		(SELECT count(*) FROM sagastate WHERE deadline <= now() AND ($1 = '' OR type = $1)),
		(SELECT count(*) FROM sagastate WHERE status = 'ABORTING' AND ($1 = '' OR type = $1) AND $2::float8 > 0
			AND status_since < now() - make_interval(secs => $2) AND (deadline IS NULL OR deadline > now()))`
	var late, aborting int64
	if err := q.QueryRow(ctx, now, sq.Type, sq.StuckAfter.Seconds()).Scan(&st.At, &late, &aborting); err != nil {
		return Stats{}, fmt.Errorf("saga stats: %w", err)
	}
	st.Stuck = late + aborting
	from := st.At.Add(-sq.Window).Truncate(sq.Bucket).Add(sq.Bucket)
	for t := from; !t.After(st.At); t = t.Add(sq.Bucket) {
		st.Buckets = append(st.Buckets, Bucket{Start: t})
	}
	bucket := func(t time.Time) *Bucket {
		i := int(t.Sub(from) / sq.Bucket)
		if t.Before(from) || i >= len(st.Buckets) {
			return nil
		}
		return &st.Buckets[i]
	}

	// Per status: the counts the transitions keep (saga_count and the
	// changes not folded into it yet).
	const byStatus = `SELECT status, sum(n)::bigint
		FROM (SELECT type, status, n FROM saga_count UNION ALL SELECT type, status, n FROM saga_count_change) c
		WHERE ($1 = '' OR type = $1) GROUP BY status`
	err := each(ctx, q, byStatus, []any{sq.Type}, func(r pgx.CollectableRow) error {
		var (
			s Status
			n int64
		)
		err := r.Scan(&s, &n)
		st.ByState[s] = n
		return err
	})
	if err != nil {
		return Stats{}, err
	}
	// One row per saga created or ended in the window: when, and how.
	const events = `SELECT created_at, '' FROM sagastate WHERE ($1 = '' OR type = $1) AND created_at >= $2
		UNION ALL
		SELECT status_since, status FROM sagastate
		WHERE ($1 = '' OR type = $1) AND status IN ('SUCCEEDED', 'ABORTED') AND status_since >= $2`
	err = each(ctx, q, events, []any{sq.Type, from}, func(r pgx.CollectableRow) error {
		var (
			at time.Time
			s  Status
		)
		if err := r.Scan(&at, &s); err != nil {
			return err
		}
		if b := bucket(at); b != nil {
			switch s {
			case "":
				b.Started++
			case StatusSucceeded:
				b.Succeeded++
			case StatusAborted:
				b.Aborted++
			}
		}
		return nil
	})
	if err != nil {
		return Stats{}, err
	}
	const durations = `SELECT count(*),
			coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM status_since - created_at)), 0),
			coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM status_since - created_at)), 0)
		FROM sagastate WHERE ($1 = '' OR type = $1) AND status IN ('SUCCEEDED', 'ABORTED') AND status_since >= $2`
	var p50, p99 float64
	if err := q.QueryRow(ctx, durations, sq.Type, from).Scan(&st.Ended, &p50, &p99); err != nil {
		return Stats{}, fmt.Errorf("saga stats: durations: %w", err)
	}
	st.P50, st.P99 = seconds(p50), seconds(p99)
	return st, nil
}

func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Microsecond)
}

// each runs sql and calls f for every row.
func each(ctx context.Context, q Querier, sql string, args []any, f func(pgx.CollectableRow) error) error {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("saga stats: %w", err)
	}
	_, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (struct{}, error) { return struct{}{}, f(r) })
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("saga stats: %w", err)
	}
	return nil
}

// FoldCounts folds the changes of the counts that transitions and Prune
// appended to saga_count_change into saga_count, in one transaction, and
// returns how many it folded. RunSweeper folds at every tick, so that the
// changes the stats read stay a few seconds' worth. Orchestrators folding
// at once fold each change once: a change is deleted by one fold only.
func FoldCounts(ctx context.Context, db TxBeginner) (int64, error) {
	const fold = `WITH moved AS (DELETE FROM saga_count_change RETURNING type, status, n),
		folded AS (INSERT INTO saga_count (type, status, n) SELECT type, status, sum(n) FROM moved GROUP BY type, status
			ON CONFLICT (type, status) DO UPDATE SET n = saga_count.n + excluded.n)
		SELECT count(*) FROM moved`
	var n int64
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, fold).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("fold saga counts: %w", err)
	}
	return n, nil
}
