package saga_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/saga"
)

// Three sagas — one succeeds, one fails at its second step and is
// compensated, one still runs — are counted by ReadStats, found by List's
// payload and age filters, and reported to the observer transition by
// transition.
func TestStatsFiltersAndObserver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	type seen struct {
		Step, To string
		Cause    saga.CauseKind
		Ended    saga.Status
	}
	var observed []seen
	observe := func(prev, next saga.State, step string, cause saga.CauseKind) {
		end := saga.Status("")
		if next.Status.Done() && !prev.Status.Done() {
			end = next.Status
		}
		observed = append(observed, seen{step, string(next.StepStatus[step]), cause, end})
	}
	o, err := saga.New(saga.Config{Definitions: []saga.Definition{{Type: "two-step", Steps: []saga.Step{step("one"), step("two")}}}, Observers: []saga.Observer{observe}})
	if err != nil {
		t.Fatal(err)
	}
	pool := testenv.Pool(t, testenv.Database(t, migrations.Order()))
	inTx := func(f func(tx pgx.Tx) error) {
		t.Helper()
		if err := pgx.BeginFunc(ctx, pool, f); err != nil {
			t.Fatal(err)
		}
	}
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	for i, id := range ids {
		inTx(func(tx pgx.Tx) error {
			_, err := o.Start(ctx, tx, "two-step", id, json.RawMessage(`{"customer-id": 7, "order-id": `+strconv.Itoa(i+1)+`}`), txNow(t, tx))
			return err
		})
	}
	handle := func(id uuid.UUID, step string, status saga.StepStatus) {
		t.Helper()
		inTx(func(tx pgx.Tx) error {
			_, _, err := o.Handle(ctx, tx, id, step, reply(status), saga.Cause{})
			return err
		})
	}
	handle(ids[0], "one", saga.StepSucceeded)
	handle(ids[0], "two", saga.StepSucceeded)
	handle(ids[1], "one", saga.StepSucceeded)
	handle(ids[1], "two", saga.StepFailed)
	handle(ids[1], "one", saga.StepCompensated)

	var st saga.Stats
	inTx(func(tx pgx.Tx) error {
		st, err = saga.ReadStats(ctx, tx, saga.StatsQuery{Type: "two-step", Window: 5 * time.Minute, Bucket: time.Minute})
		return err
	})
	want := map[saga.Status]int64{saga.StatusStarted: 1, saga.StatusSucceeded: 1, saga.StatusAborting: 0, saga.StatusAborted: 1}
	if diff := cmp.Diff(want, st.ByState); diff != "" {
		t.Errorf("sagas per status (-want +got):\n%s", diff)
	}
	var started, succeeded, aborted int64
	for _, b := range st.Buckets {
		started, succeeded, aborted = started+b.Started, succeeded+b.Succeeded, aborted+b.Aborted
	}
	if len(st.Buckets) != 5 || started != 3 || succeeded != 1 || aborted != 1 || st.Ended != 2 || st.P99 < st.P50 || st.P50 <= 0 {
		t.Errorf("stats: %d buckets, started %d, succeeded %d, aborted %d, ended %d, p50 %s, p99 %s",
			len(st.Buckets), started, succeeded, aborted, st.Ended, st.P50, st.P99)
	}
	if _, err := saga.ReadStats(ctx, pool, saga.StatsQuery{Type: "two-step", Window: time.Hour, Bucket: time.Second}); err == nil {
		t.Error("ReadStats took 3600 buckets")
	}

	list := func(f saga.Filter) int {
		t.Helper()
		f.Type = "two-step"
		got, _, err := saga.List(ctx, pool, f)
		if err != nil {
			t.Fatal(err)
		}
		return len(got)
	}
	for name, c := range map[string]struct {
		f    saga.Filter
		want int
	}{
		"customer":        {saga.Filter{PayloadIDs: map[string]int64{"customer-id": 7}}, 3},
		"order":           {saga.Filter{PayloadIDs: map[string]int64{"order-id": 2}}, 1},
		"other customer":  {saga.Filter{PayloadIDs: map[string]int64{"customer-id": 8}}, 0},
		"newer than 1m":   {saga.Filter{NewerThan: time.Minute}, 3},
		"older than 1m":   {saga.Filter{OlderThan: time.Minute}, 0},
		"order, ABORTED":  {saga.Filter{PayloadIDs: map[string]int64{"order-id": 2}, Status: saga.StatusAborted}, 1},
		"order, STARTED?": {saga.Filter{PayloadIDs: map[string]int64{"order-id": 2}, Status: saga.StatusStarted}, 0},
	} {
		if got := list(c.f); got != c.want {
			t.Errorf("%s: %d sagas, want %d", name, got, c.want)
		}
	}

	wantSeen := []seen{
		{"one", "STARTED", saga.CauseStart, ""}, {"one", "STARTED", saga.CauseStart, ""}, {"one", "STARTED", saga.CauseStart, ""},
		{"one", "SUCCEEDED", saga.CauseReply, ""}, {"two", "SUCCEEDED", saga.CauseReply, saga.StatusSucceeded},
		{"one", "SUCCEEDED", saga.CauseReply, ""}, {"two", "FAILED", saga.CauseReply, ""},
		{"one", "COMPENSATED", saga.CauseReply, saga.StatusAborted},
	}
	if diff := cmp.Diff(wantSeen, observed); diff != "" {
		t.Errorf("observed transitions (-want +got):\n%s", diff)
	}
}
