package saga_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/saga"
)

func orchestrator(t *testing.T, defs ...saga.Definition) *saga.Orchestrator {
	t.Helper()
	o, err := saga.New(saga.Config{Definitions: defs})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func startType(t *testing.T, pool *pgxpool.Pool, o *saga.Orchestrator, typ string) saga.State {
	t.Helper()
	var s saga.State
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		var err error
		s, err = o.Start(context.Background(), tx, typ, uuid.New(), json.RawMessage(`{}`), txNow(t, tx))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Parallel steps on a real database: both requests leave in the start's
// transaction, each step waits with its own deadline (stored, read back),
// one step's deadline is swept while the other's reply is applied.
func TestParallelStepsPersisted(t *testing.T) {
	t.Parallel()
	one, two := step("one"), step("two")
	two.After = []string{}
	o := orchestrator(t, saga.Definition{Type: "pair", Steps: []saga.Step{one, two}})
	pool := testenv.Pool(t, testenv.Database(t, migrations.Order()))
	s := startType(t, pool, o, "pair")
	got := outboxRows(t, pool)
	slices.SortFunc(got, func(a, b outboxRow) int { return strings.Compare(a.AggregateType, b.AggregateType) })
	if len(got) != 2 || got[0].AggregateType != "one" || got[1].AggregateType != "two" {
		t.Fatalf("outbox %+v, want both requests", got)
	}
	loaded, err := saga.Load(context.Background(), pool, s.ID)
	if err != nil || len(loaded.Waits) != 2 || !loaded.Waits["one"].Deadline.Equal(s.Waits["one"].Deadline) {
		t.Fatalf("loaded %+v (%v), want both steps waiting as started %+v", loaded, err, s.Waits)
	}
	if after, changed := handle(t, pool, o, s.ID, "two", saga.StepSucceeded); !changed || after.Status != saga.StatusStarted ||
		len(after.Waits) != 1 || after.CurrentStep != "one" {
		t.Fatalf("after two succeeded: %+v", after)
	}
	makeDue(t, pool, s.ID)
	if swept, acted := expire(t, pool, o); !acted || swept.Waits["one"].Attempt != 1 || swept.StepStatus["two"] != saga.StepSucceeded {
		t.Fatalf("swept %v: %+v, want one sent again", acted, swept)
	}
	if done, _ := handle(t, pool, o, s.ID, "one", saga.StepSucceeded); done.Status != saga.StatusSucceeded || len(done.Waits) != 0 {
		t.Fatalf("after both: %+v", done)
	}
}

// A saga runs the version it started with; one whose version the
// orchestrator does not hold is left as it is: its replies are refused
// with ErrUnknownVersion, the sweeper passes it by, operators cannot act
// on it. Given the version back, it goes on.
func TestSagasRunTheVersionTheyStartedWith(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Pool(t, testenv.Database(t, migrations.Order()))
	v1 := saga.Definition{Type: "t", Steps: []saga.Step{step("one"), step("two")}}
	v2 := saga.Definition{Type: "t", Version: 2, Steps: []saga.Step{step("zero"), step("one"), step("two")}}
	old := startType(t, pool, orchestrator(t, v1), "t")

	both := orchestrator(t, v1, v2)
	if fresh := startType(t, pool, both, "t"); fresh.DefinitionVersion != 2 || fresh.CurrentStep != "zero" {
		t.Errorf("new saga: version %d at %s, want version 2 at zero", fresh.DefinitionVersion, fresh.CurrentStep)
	}
	if s, changed := handle(t, pool, both, old.ID, "one", saga.StepSucceeded); !changed || s.CurrentStep != "two" || s.DefinitionVersion != 1 {
		t.Errorf("old saga after one: %+v, want version 1 at two", s)
	}

	onlyV2 := orchestrator(t, v2)
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, _, err := onlyV2.Handle(ctx, tx, old.ID, "two", reply(saga.StepSucceeded), replyCause("two"))
		return err
	})
	if !errors.Is(err, saga.ErrUnknownVersion) {
		t.Errorf("reply to a version-1 saga without version 1: %v, want ErrUnknownVersion", err)
	}
	if _, err := saga.Load(ctx, pool, old.ID); err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := onlyV2.Abort(ctx, tx, old.ID, saga.Cause{Actor: "ops", Action: "abort", Reason: "test"})
		return err
	})
	if !errors.Is(err, saga.ErrWrongState) || !errors.Is(err, saga.ErrUnknownVersion) {
		t.Errorf("abort of a version-1 saga without version 1: %v", err)
	}
	if _, err := pool.Exec(ctx, `UPDATE sagastate SET deadline = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if s, acted := expire(t, pool, onlyV2); !acted || s.DefinitionVersion != 2 {
		t.Errorf("sweep without version 1: acted %v on %+v, want the version-2 saga", acted, s)
	}
	if s, acted := expire(t, pool, onlyV2); acted {
		t.Errorf("sweep without version 1 acted on %+v", s)
	}
	if s, acted := expire(t, pool, both); !acted || s.ID != old.ID {
		t.Errorf("sweep with version 1 back: acted %v on %+v, want the old saga", acted, s)
	}
	if s, _ := handle(t, pool, both, old.ID, "two", saga.StepSucceeded); s.Status != saga.StatusSucceeded {
		t.Errorf("old saga: %+v, want it to end on version 1", s)
	}
}
