package saga_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/saga"
)

// countsAgree fails unless the counts (saga_count and its changes not
// folded yet) say what sagastate holds, and again once folded.
func countsAgree(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	read := func(sql string) map[string]int64 {
		rows, _ := pool.Query(context.Background(), sql)
		out := map[string]int64{}
		var (
			k string
			n int64
		)
		if _, err := pgx.ForEachRow(rows, []any{&k, &n}, func() error {
			if n != 0 {
				out[k] = n
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	const counts = `SELECT type || '/' || status, sum(n)::bigint
		FROM (SELECT type, status, n FROM saga_count UNION ALL SELECT type, status, n FROM saga_count_change) c GROUP BY 1`
	actual := read(`SELECT type || '/' || status, count(*) FROM sagastate GROUP BY 1`)
	if diff := cmp.Diff(actual, read(counts)); diff != "" {
		t.Errorf("counts (-sagastate +counts):\n%s", diff)
	}
	if _, err := saga.FoldCounts(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	if left := read(`SELECT 'changes', count(*) FROM saga_count_change`); len(left) > 0 {
		t.Errorf("changes left after the fold: %v", left)
	}
	if diff := cmp.Diff(actual, read(`SELECT type || '/' || status, n FROM saga_count`)); diff != "" {
		t.Errorf("folded counts (-sagastate +saga_count):\n%s", diff)
	}
}

// Ended sagas older than the retention go, with their history and what
// the service keeps for them; running ones and recent ones stay; the
// counters follow.
func TestPruneRemovesEndedSagasOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var pruned []uuid.UUID
	o, err := saga.New(saga.Config{
		Definitions: []saga.Definition{{Type: "two-step", Steps: []saga.Step{step("one"), step("two")}}},
		OnPrune: func(_ context.Context, _ pgx.Tx, ids []uuid.UUID) error {
			pruned = append(pruned, ids...)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	pool := testenv.Pool(t, testenv.Database(t, migrations.Order()))
	var old, recent, running []uuid.UUID
	for i := range 7 {
		id := start(t, pool, o)
		switch i % 3 {
		case 0, 1:
			handle(t, pool, o, id, "one", saga.StepSucceeded)
			handle(t, pool, o, id, "two", map[bool]saga.StepStatus{true: saga.StepSucceeded, false: saga.StepFailed}[i%2 == 0])
			if i%2 == 1 {
				handle(t, pool, o, id, "one", saga.StepCompensated)
			}
			if i < 4 {
				old = append(old, id)
			} else {
				recent = append(recent, id)
			}
		default:
			running = append(running, id)
		}
	}
	countsAgree(t, pool)
	// Time passes for the old ones: they ended two hours ago.
	if _, err := pool.Exec(ctx, `UPDATE sagastate SET status_since = now() - interval '2 hours' WHERE id = ANY($1)`, old); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE sagastate SET status_since = now() - interval '2 hours', created_at = now() - interval '3 hours'
		WHERE id = ANY($1)`, running); err != nil {
		t.Fatal(err)
	}
	total := 0
	for {
		var n int
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			n, err = o.Prune(ctx, tx, time.Hour, 2) // batches of two
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	slices.SortFunc(pruned, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	slices.SortFunc(old, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	if total != len(old) || !slices.Equal(pruned, old) {
		t.Errorf("pruned %d: %v, want the %d old ended ones %v", total, pruned, len(old), old)
	}
	for _, id := range old {
		if _, err := saga.Load(ctx, pool, id); err == nil {
			t.Errorf("saga %s still there", id)
		}
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM sagastate_history WHERE saga_id = $1`, id).Scan(&n); err != nil || n != 0 {
			t.Errorf("saga %s: %d history rows left (%v)", id, n, err)
		}
	}
	for _, id := range append(recent, running...) {
		if _, err := saga.Load(ctx, pool, id); err != nil {
			t.Errorf("saga %s removed: %v", id, err)
		}
	}
	countsAgree(t, pool)
}

// Folds running at once, while sagas start and end, fold every change
// once: the counts stay exact.
func TestCountsFoldedConcurrently(t *testing.T) {
	t.Parallel()
	o, pool := newOrchestrator(t)
	ctx, stop := context.WithCancel(context.Background())
	var folds sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		folds.Go(func() {
			for ctx.Err() == nil {
				if _, err := saga.FoldCounts(ctx, pool); err != nil && ctx.Err() == nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := range 60 {
		id := start(t, pool, o)
		switch i % 3 {
		case 0:
			handle(t, pool, o, id, "one", saga.StepSucceeded)
			handle(t, pool, o, id, "two", saga.StepSucceeded)
		case 1:
			handle(t, pool, o, id, "one", saga.StepFailed)
		}
	}
	stop()
	folds.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	countsAgree(t, pool)
}
