package saga_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/pkg/saga"
)

// txNow reads the transaction's clock, which Start takes.
func txNow(t *testing.T, tx pgx.Tx) time.Time {
	t.Helper()
	var now time.Time
	if err := tx.QueryRow(context.Background(), `SELECT now()`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	return now
}

func start(t *testing.T, pool *pgxpool.Pool, o *saga.Orchestrator) uuid.UUID {
	t.Helper()
	id := uuid.New()
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		_, err := o.Start(context.Background(), tx, "two-step", id, json.RawMessage(`{}`), txNow(t, tx))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// expire runs one Expire in its own transaction.
func expire(t *testing.T, pool *pgxpool.Pool, o *saga.Orchestrator) (saga.State, bool) {
	t.Helper()
	var (
		s     saga.State
		acted bool
	)
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		var err error
		s, acted, err = o.Expire(context.Background(), tx)
		return err
	})
	if err != nil {
		t.Fatalf("expire: %v", err)
	}
	return s, acted
}

// makeDue moves saga id's deadline into the past, as the passing of time
// would: the tests do not wait for real deadlines.
func makeDue(t *testing.T, pool *pgxpool.Pool, id uuid.UUID) {
	t.Helper()
	tag, err := pool.Exec(context.Background(), `UPDATE sagastate SET deadline = now() - interval '1 second' WHERE id = $1 AND deadline IS NOT NULL`, id)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("make saga %s due: %v (%d rows)", id, err, tag.RowsAffected())
	}
}

func history(t *testing.T, pool *pgxpool.Pool, id uuid.UUID) []saga.HistoryEntry {
	t.Helper()
	h, err := saga.History(context.Background(), pool, id)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// entry is the part of a history row the tests compare.
type entry struct {
	Version    int
	Step       string
	From, To   saga.StepStatus
	SagaStatus saga.Status
	Attempt    int
	Cause      saga.CauseKind
}

func entries(h []saga.HistoryEntry) []entry {
	var out []entry
	for _, e := range h {
		out = append(out, entry{e.Version, e.Step, e.From, e.To, e.SagaStatus, e.Attempt, e.Cause.Kind})
	}
	return out
}

func TestHistoryRecordsEveryTransition(t *testing.T) {
	t.Parallel()
	o, pool := newOrchestrator(t)
	ctx := context.Background()
	id := start(t, pool, o)
	causes := map[string]saga.Cause{}
	apply := func(step string, status saga.StepStatus) bool {
		c := replyCause(step)
		var changed bool
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			_, changed, err = o.Handle(ctx, tx, id, step, reply(status), c)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if changed {
			causes[step+string(status)] = c
		}
		return changed
	}
	apply("one", saga.StepSucceeded)
	if apply("one", saga.StepSucceeded) {
		t.Fatal("duplicate reply changed the saga")
	}
	apply("two", saga.StepFailed)
	apply("one", saga.StepCompensated)

	h := history(t, pool, id)
	want := []entry{
		{0, "one", "", saga.StepStarted, saga.StatusStarted, 0, saga.CauseStart},
		{1, "one", saga.StepStarted, saga.StepSucceeded, saga.StatusStarted, 0, saga.CauseReply},
		{1, "two", "", saga.StepStarted, saga.StatusStarted, 0, saga.CauseReply},
		{2, "two", saga.StepStarted, saga.StepFailed, saga.StatusAborting, 0, saga.CauseReply},
		{2, "one", saga.StepSucceeded, saga.StepCompensating, saga.StatusAborting, 0, saga.CauseReply},
		{3, "one", saga.StepCompensating, saga.StepCompensated, saga.StatusAborted, 0, saga.CauseReply},
	}
	if diff := cmp.Diff(want, entries(h)); diff != "" {
		t.Fatalf("history (-want +got):\n%s", diff)
	}
	// Each reply row names its message; the duplicate left no row.
	for i, key := range map[int]string{1: "oneSUCCEEDED", 2: "oneSUCCEEDED", 3: "twoFAILED", 4: "twoFAILED", 5: "oneCOMPENSATED"} {
		if got := h[i].Cause; got.EventID != causes[key].EventID || got.Topic != causes[key].Topic || got.EventType != "REPLY" {
			t.Errorf("row %d cause = %+v, want the message of %s %+v", i, got, key, causes[key])
		}
	}
	// Rows record the deadline the saga had after the transition.
	for i, e := range h {
		if waits := e.SagaStatus == saga.StatusStarted || e.SagaStatus == saga.StatusAborting; waits == e.Deadline.IsZero() {
			t.Errorf("row %d: saga %s with deadline %v", i, e.SagaStatus, e.Deadline)
		}
	}
	if _, err := saga.History(ctx, pool, uuid.New()); !errors.Is(err, saga.ErrNotFound) {
		t.Errorf("history of an unknown saga: %v, want ErrNotFound", err)
	}
}

// A step whose reply does not come: its request is sent again (one retry),
// then it is abandoned and — being the first step — cancelled itself; the
// cancel is sent again for as long as its reply does not come.
func TestExpireRetriesAbandonsAndResendsCompensation(t *testing.T) {
	t.Parallel()
	o, pool := newOrchestrator(t)
	id := start(t, pool, o)
	if _, acted := expire(t, pool, o); acted {
		t.Fatal("acted on a saga whose deadline has not passed")
	}

	makeDue(t, pool, id)
	s, acted := expire(t, pool, o)
	if !acted || s.ID != id || s.Status != saga.StatusStarted || s.StepStatus["one"] != saga.StepStarted || s.Attempt != 1 {
		t.Fatalf("first deadline: acted=%v %+v, want step one sent again (attempt 1)", acted, s)
	}
	if d := time.Until(s.Deadline); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("deadline after the retry is %v away, want the policy's 1h (no MaxTimeout: no doubling)", d)
	}

	makeDue(t, pool, id)
	s, acted = expire(t, pool, o)
	if !acted || s.Status != saga.StatusAborting || s.StepStatus["one"] != saga.StepCompensating || s.Attempt != 0 {
		t.Fatalf("second deadline: acted=%v %+v, want step one abandoned and cancelled", acted, s)
	}

	makeDue(t, pool, id)
	s, acted = expire(t, pool, o)
	if !acted || s.Status != saga.StatusAborting || s.StepStatus["one"] != saga.StepCompensating || s.Attempt != 1 {
		t.Fatalf("compensation deadline: acted=%v %+v, want the cancel sent again", acted, s)
	}
	s, _ = handle(t, pool, o, id, "one", saga.StepCompensated)
	if s.Status != saga.StatusAborted || !s.Deadline.IsZero() {
		t.Fatalf("after the cancel's reply: %+v, want ABORTED without deadline", s)
	}
	var deadline *time.Time
	if err := pool.QueryRow(context.Background(), `SELECT deadline FROM sagastate WHERE id = $1`, id).Scan(&deadline); err != nil || deadline != nil {
		t.Errorf("stored deadline = %v (%v), want NULL", deadline, err)
	}
	if _, acted := expire(t, pool, o); acted {
		t.Error("acted on an aborted saga")
	}

	want := []entry{
		{0, "one", "", saga.StepStarted, saga.StatusStarted, 0, saga.CauseStart},
		{1, "one", saga.StepStarted, saga.StepStarted, saga.StatusStarted, 1, saga.CauseRetry},
		{2, "one", saga.StepStarted, saga.StepCompensating, saga.StatusAborting, 0, saga.CauseTimeout},
		{3, "one", saga.StepCompensating, saga.StepCompensating, saga.StatusAborting, 1, saga.CauseRetry},
		{4, "one", saga.StepCompensating, saga.StepCompensated, saga.StatusAborted, 0, saga.CauseReply},
	}
	if diff := cmp.Diff(want, entries(history(t, pool, id))); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	sid := id.String()
	wantRows := []outboxRow{{"one", sid, "REQUEST"}, {"one", sid, "REQUEST"}, {"one", sid, "CANCEL"}, {"one", sid, "CANCEL"}}
	if diff := cmp.Diff(wantRows, outboxRows(t, pool)); diff != "" {
		t.Errorf("outbox (-want +got):\n%s", diff)
	}
}

// Two order-service instances sweep at the same time. The interleaving is
// forced: instance A has taken the due saga and not committed; instance B
// sweeps then, and must skip the row A holds (not wait for it, not act on
// it); after A commits, the deadline has moved and B finds nothing either.
func TestTwoSweepersNeverActTwiceOnOneSaga(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	oA, pool := newOrchestrator(t)
	oB, _ := newOrchestrator(t)
	poolB := testenv.Pool(t, pool.Config().ConnString())
	id := start(t, pool, oA)
	makeDue(t, pool, id)

	txA, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer txA.Rollback(ctx)
	if s, acted, err := oA.Expire(ctx, txA); err != nil || !acted || s.ID != id {
		t.Fatalf("instance A: acted=%v err=%v", acted, err)
	}

	// B must not block on A's lock: a bounded context turns a wait into a
	// failure instead of a hang.
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = pgx.BeginFunc(bctx, poolB, func(tx pgx.Tx) error {
		_, acted, err := oB.Expire(bctx, tx)
		if acted {
			t.Error("instance B acted on the saga instance A holds")
		}
		return err
	})
	if err != nil {
		t.Fatalf("instance B while A holds the saga: %v", err)
	}
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, acted := expire(t, poolB, oB); acted {
		t.Error("instance B acted again after A committed")
	}
	var retries int
	for _, e := range history(t, pool, id) {
		if e.Cause.Kind == saga.CauseRetry || e.Cause.Kind == saga.CauseTimeout {
			retries++
		}
	}
	if retries != 1 || len(outboxRows(t, pool)) != 2 {
		t.Errorf("%d deadline transitions and %d requests, want 1 retry: the request sent twice", retries, len(outboxRows(t, pool)))
	}
}

// Many due sagas, two sweepers running truly concurrently until nothing is
// due: every saga is acted on exactly once between them.
func TestConcurrentSweepersShareTheWork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o, pool := newOrchestrator(t)
	poolB := testenv.Pool(t, pool.Config().ConnString())
	const n = 40
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = start(t, pool, o)
	}
	if _, err := pool.Exec(ctx, `UPDATE sagastate SET deadline = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		acted []uuid.UUID
		wg    sync.WaitGroup
	)
	for _, p := range []*pgxpool.Pool{pool, poolB} {
		wg.Go(func() {
			for {
				var (
					s  saga.State
					ok bool
				)
				err := pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
					var err error
					s, ok, err = o.Expire(ctx, tx)
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
				if !ok {
					return
				}
				mu.Lock()
				acted = append(acted, s.ID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.SortFunc(acted, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	if diff := cmp.Diff(ids, acted); diff != "" {
		t.Errorf("sagas acted on (-each once +got):\n%s", diff)
	}
	var rows, multi int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE attempt <> 1) FROM sagastate`).Scan(&rows, &multi); err != nil || rows != n || multi != 0 {
		t.Errorf("%d sagas, %d not at attempt 1 (%v)", rows, multi, err)
	}
}

// A reply and the sweeper race on one saga, in both orders. Sweeper first:
// the reply loaded the old version, waits for the sweeper's row lock, loses
// the optimistic lock (ErrStale) and, retried, applies to the new state.
// Reply first: the sweeper skips the row the reply holds, and afterwards
// the saga waits for the next step with a fresh deadline.
func TestReplyRacesTheSweeper(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("sweeper first", func(t *testing.T) {
		t.Parallel()
		o, pool := newOrchestrator(t)
		id := start(t, pool, o)
		makeDue(t, pool, id)
		txA, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer txA.Rollback(ctx)
		if _, acted, err := o.Expire(ctx, txA); err != nil || !acted {
			t.Fatalf("sweeper: acted=%v err=%v", acted, err)
		}
		txB, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer txB.Rollback(ctx)
		done := make(chan error, 1)
		go func() {
			_, _, err := o.Handle(ctx, txB, id, "one", reply(saga.StepSucceeded), replyCause("one"))
			done <- err
		}()
		pidB := txB.Conn().PgConn().PID()
		testenv.AwaitLockWait(t, pool, pidB, "the reply")
		if err := txA.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, saga.ErrStale) {
			t.Fatalf("reply after the sweeper committed: %v, want ErrStale", err)
		}
		_ = txB.Rollback(ctx)
		s, changed := handle(t, pool, o, id, "one", saga.StepSucceeded)
		if !changed || s.CurrentStep != "two" || s.Attempt != 0 || s.Version != 2 {
			t.Fatalf("retried reply: changed=%v %+v, want step two started at version 2", changed, s)
		}
		sid := id.String()
		if diff := cmp.Diff([]outboxRow{{"one", sid, "REQUEST"}, {"one", sid, "REQUEST"}, {"two", sid, "REQUEST"}}, outboxRows(t, pool)); diff != "" {
			t.Errorf("outbox (-want +got):\n%s", diff)
		}
	})
	t.Run("reply first", func(t *testing.T) {
		t.Parallel()
		o, pool := newOrchestrator(t)
		id := start(t, pool, o)
		makeDue(t, pool, id)
		txB, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer txB.Rollback(ctx)
		if _, changed, err := o.Handle(ctx, txB, id, "one", reply(saga.StepSucceeded), replyCause("one")); err != nil || !changed {
			t.Fatalf("reply: changed=%v err=%v", changed, err)
		}
		bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err = pgx.BeginFunc(bctx, pool, func(tx pgx.Tx) error {
			_, acted, err := o.Expire(bctx, tx)
			if acted {
				t.Error("the sweeper acted on the saga the reply holds")
			}
			return err
		})
		if err != nil {
			t.Fatalf("sweeper while the reply holds the saga: %v", err)
		}
		if err := txB.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if _, acted := expire(t, pool, o); acted {
			t.Error("the sweeper acted on step two before its deadline")
		}
		s, err := saga.Load(ctx, pool, id)
		if err != nil || s.CurrentStep != "two" || s.Version != 1 || time.Until(s.Deadline) < 59*time.Minute {
			t.Errorf("saga = %+v (%v), want step two waiting with a fresh deadline", s, err)
		}
	})
}

// Operator actions are guarded like replies, recorded with who, what and
// why, and write nothing when they do not apply.
func TestOperatorActionsPersist(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o, pool := newOrchestrator(t)
	id := start(t, pool, o)
	op := func(action string, f func(tx pgx.Tx, c saga.Cause) (saga.State, error)) (saga.State, error) {
		var s saga.State
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			s, err = f(tx, saga.Cause{Actor: "alice", Action: action, Reason: "test " + action})
			return err
		})
		return s, err
	}
	abort := func(id uuid.UUID) func(pgx.Tx, saga.Cause) (saga.State, error) {
		return func(tx pgx.Tx, c saga.Cause) (saga.State, error) { return o.Abort(ctx, tx, id, c) }
	}
	retry := func(id uuid.UUID) func(pgx.Tx, saga.Cause) (saga.State, error) {
		return func(tx pgx.Tx, c saga.Cause) (saga.State, error) { return o.Retry(ctx, tx, id, "", c) }
	}
	mark := func(id uuid.UUID, step string) func(pgx.Tx, saga.Cause) (saga.State, error) {
		return func(tx pgx.Tx, c saga.Cause) (saga.State, error) { return o.MarkCompensated(ctx, tx, id, step, c) }
	}
	type snap struct {
		State   saga.State
		History int
		Outbox  int
	}
	snapshot := func() snap {
		s, err := saga.Load(ctx, pool, id)
		if err != nil {
			t.Fatal(err)
		}
		return snap{s, len(history(t, pool, id)), len(outboxRows(t, pool))}
	}
	refused := func(name string, f func(pgx.Tx, saga.Cause) (saga.State, error), want error) {
		t.Helper()
		before := snapshot()
		if _, err := op(name, f); !errors.Is(err, want) {
			t.Errorf("%s: err = %v, want %v", name, err, want)
		}
		if diff := cmp.Diff(before, snapshot()); diff != "" {
			t.Errorf("%s refused but wrote (-before +after):\n%s", name, diff)
		}
	}

	refused("compensate", mark(id, "one"), saga.ErrWrongState)
	if s, err := op("retry", retry(id)); err != nil || s.Attempt != 1 {
		t.Fatalf("retry: %+v %v", s, err)
	}
	if s, err := op("abort", abort(id)); err != nil || s.Status != saga.StatusAborting || s.StepStatus["one"] != saga.StepCompensating {
		t.Fatalf("abort: %+v %v", s, err)
	}
	refused("abort", abort(id), saga.ErrWrongState)
	refused("compensate", mark(id, "two"), saga.ErrWrongState)
	if s, err := op("compensate", mark(id, "one")); err != nil || s.Status != saga.StatusAborted {
		t.Fatalf("compensate: %+v %v", s, err)
	}
	refused("retry", retry(id), saga.ErrWrongState)
	for name, f := range map[string]func(pgx.Tx, saga.Cause) (saga.State, error){
		"abort": abort(uuid.New()), "retry": retry(uuid.New()), "compensate": mark(uuid.New(), "one"),
	} {
		refused(name, f, saga.ErrNotFound)
	}

	h := history(t, pool, id)
	want := []entry{
		{0, "one", "", saga.StepStarted, saga.StatusStarted, 0, saga.CauseStart},
		{1, "one", saga.StepStarted, saga.StepStarted, saga.StatusStarted, 1, saga.CauseOperator},
		{2, "one", saga.StepStarted, saga.StepCompensating, saga.StatusAborting, 0, saga.CauseOperator},
		{3, "one", saga.StepCompensating, saga.StepCompensated, saga.StatusAborted, 0, saga.CauseOperator},
	}
	if diff := cmp.Diff(want, entries(h)); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	for i, action := range []string{"retry", "abort", "compensate"} {
		want := saga.Cause{Kind: saga.CauseOperator, Actor: "alice", Action: action, Reason: "test " + action}
		if diff := cmp.Diff(want, h[i+1].Cause); diff != "" {
			t.Errorf("%s cause (-want +got):\n%s", action, diff)
		}
	}
	sid := id.String()
	wantRows := []outboxRow{{"one", sid, "REQUEST"}, {"one", sid, "REQUEST"}, {"one", sid, "CANCEL"}}
	if diff := cmp.Diff(wantRows, outboxRows(t, pool)); diff != "" {
		t.Errorf("outbox (-want +got):\n%s", diff)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o, pool := newOrchestrator(t)
	// Created oldest first: running, succeeded, aborting, past deadline, old.
	running := start(t, pool, o)
	succeeded := start(t, pool, o)
	handle(t, pool, o, succeeded, "one", saga.StepSucceeded)
	handle(t, pool, o, succeeded, "two", saga.StepSucceeded)
	aborting := start(t, pool, o)
	handle(t, pool, o, aborting, "one", saga.StepSucceeded)
	handle(t, pool, o, aborting, "two", saga.StepFailed)
	late := start(t, pool, o)
	makeDue(t, pool, late)
	old := start(t, pool, o)
	if _, err := pool.Exec(ctx, `UPDATE sagastate SET status_since = now() - interval '1 hour' WHERE id = $1`, aborting); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE sagastate SET created_at = now() - interval '2 hours' WHERE id = $1`, old); err != nil {
		t.Fatal(err)
	}
	newest := []uuid.UUID{late, aborting, succeeded, running, old}

	ids := func(f saga.Filter) []uuid.UUID {
		t.Helper()
		states, more, err := saga.List(ctx, pool, f)
		if err != nil {
			t.Fatalf("List(%+v): %v", f, err)
		}
		if more {
			t.Errorf("List(%+v) says more follow", f)
		}
		var out []uuid.UUID
		for _, s := range states {
			out = append(out, s.ID)
		}
		return out
	}
	tests := []struct {
		name string
		f    saga.Filter
		want []uuid.UUID
	}{
		{"all, newest first", saga.Filter{}, newest},
		{"by type", saga.Filter{Type: "two-step"}, newest},
		{"other type", saga.Filter{Type: "other"}, nil},
		{"by status", saga.Filter{Status: saga.StatusStarted}, []uuid.UUID{late, running, old}},
		{"aborting", saga.Filter{Status: saga.StatusAborting}, []uuid.UUID{aborting}},
		{"by a step running sagas wait for", saga.Filter{Step: "one"}, []uuid.UUID{late, aborting, running, old}},
		{"a step only an ended saga waited for", saga.Filter{Step: "two"}, nil},
		{"older than an hour", saga.Filter{OlderThan: time.Hour}, []uuid.UUID{old}},
		{"stuck: past deadline only while aborting is young", saga.Filter{Stuck: true, StuckAfter: 2 * time.Hour}, []uuid.UUID{late}},
		{"stuck: past deadline or aborting for over 30m", saga.Filter{Stuck: true, StuckAfter: 30 * time.Minute}, []uuid.UUID{late, aborting}},
		{"stuck and started", saga.Filter{Stuck: true, StuckAfter: 30 * time.Minute, Status: saga.StatusStarted}, []uuid.UUID{late}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, ids(tc.f), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}

	// Pages of two, continued from the last of each, cover every saga once.
	var (
		paged []uuid.UUID
		after *saga.Cursor
	)
	for page := 0; ; page++ {
		states, more, err := saga.List(ctx, pool, saga.Filter{Limit: 2, After: after})
		if err != nil {
			t.Fatal(err)
		}
		if len(states) > 2 {
			t.Fatalf("page %d has %d sagas", page, len(states))
		}
		for _, s := range states {
			paged = append(paged, s.ID)
		}
		if !more {
			break
		}
		c := saga.CursorOf(states[len(states)-1])
		after = &c
	}
	if diff := cmp.Diff(newest, paged); diff != "" {
		t.Errorf("paged listing (-want +got):\n%s", diff)
	}
	for _, limit := range []int{-1, saga.MaxPage + 1} {
		if _, _, err := saga.List(ctx, pool, saga.Filter{Limit: limit}); err == nil {
			t.Errorf("page size %d accepted", limit)
		}
	}
}
