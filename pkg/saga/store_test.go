package saga_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

func TestMain(m *testing.M) { testenv.Main(m) }

func step(name string) saga.Step {
	return saga.Step{
		Name:       name,
		Deadline:   saga.Deadline{Timeout: time.Hour, Retries: 1},
		Request:    func(p json.RawMessage) (saga.Message, error) { return saga.Message{Type: "REQUEST", Payload: p}, nil },
		Compensate: func(p json.RawMessage) (saga.Message, error) { return saga.Message{Type: "CANCEL", Payload: p}, nil },
		Outcome: func(r json.RawMessage) (saga.StepStatus, error) {
			var v struct{ Status saga.StepStatus }
			err := json.Unmarshal(r, &v)
			return v.Status, err
		},
	}
}

func newOrchestrator(t *testing.T) (*saga.Orchestrator, *pgxpool.Pool) {
	t.Helper()
	o, err := saga.New(saga.Config{Definitions: []saga.Definition{{Type: "two-step", Steps: []saga.Step{step("one"), step("two")}}}})
	if err != nil {
		t.Fatal(err)
	}
	return o, testenv.Pool(t, testenv.Database(t, migrations.Order()))
}

type outboxRow struct{ AggregateType, AggregateID, Type string }

func outboxRows(t *testing.T, pool *pgxpool.Pool) []outboxRow {
	t.Helper()
	var rows []outboxRow
	for _, e := range testenv.Outbox[json.RawMessage](t, pool) {
		rows = append(rows, outboxRow{e.AggregateType, e.AggregateID, e.Type})
	}
	return rows
}

func reply(status saga.StepStatus) json.RawMessage {
	return json.RawMessage(`{"status":"` + string(status) + `"}`)
}

// replyCause is the cause of a reply of step, as the consumer passes it.
func replyCause(step string) saga.Cause {
	return saga.Cause{EventID: uuid.New(), Topic: step + ".response", EventType: "REPLY"}
}

func handle(t *testing.T, pool *pgxpool.Pool, o *saga.Orchestrator, id uuid.UUID, step string, status saga.StepStatus) (saga.State, bool) {
	t.Helper()
	var (
		s       saga.State
		changed bool
	)
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		var err error
		s, changed, err = o.Handle(context.Background(), tx, id, step, reply(status), replyCause(step))
		return err
	})
	if err != nil {
		t.Fatalf("handle %s %s: %v", step, status, err)
	}
	return s, changed
}

func TestStartAndHandlePersistStateAndMessages(t *testing.T) {
	t.Parallel()
	o, pool := newOrchestrator(t)
	ctx := context.Background()
	id := uuid.New()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := o.Start(ctx, tx, "two-step", id, json.RawMessage(`{"amount":5}`), txNow(t, tx))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	s, changed := handle(t, pool, o, id, "one", saga.StepSucceeded)
	if !changed || s.Version != 1 || s.CurrentStep != "two" {
		t.Fatalf("after one: changed=%v %+v", changed, s)
	}
	// A redelivered reply is unexpected now and changes nothing.
	if s2, changed := handle(t, pool, o, id, "one", saga.StepSucceeded); changed || s2.Version != 1 {
		t.Fatalf("duplicate reply changed the saga: %+v", s2)
	}
	handle(t, pool, o, id, "two", saga.StepFailed)
	final, _ := handle(t, pool, o, id, "one", saga.StepCompensated)

	loaded, err := saga.Load(ctx, pool, id)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(final, loaded); diff != "" {
		t.Errorf("loaded state differs from returned (-returned +loaded):\n%s", diff)
	}
	want := map[string]saga.StepStatus{"one": saga.StepCompensated, "two": saga.StepFailed}
	if loaded.Status != saga.StatusAborted || loaded.Version != 3 || !cmp.Equal(want, loaded.StepStatus) {
		t.Errorf("final state = %+v", loaded)
	}
	sid := id.String()
	wantRows := []outboxRow{{"one", sid, "REQUEST"}, {"two", sid, "REQUEST"}, {"one", sid, "CANCEL"}}
	if diff := cmp.Diff(wantRows, outboxRows(t, pool)); diff != "" {
		t.Errorf("outbox (-want +got):\n%s", diff)
	}
}

func TestLoadUnknownSaga(t *testing.T) {
	t.Parallel()
	_, pool := newOrchestrator(t)
	if _, err := saga.Load(context.Background(), pool, uuid.New()); !errors.Is(err, saga.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

// Two replies race on one saga row: both transactions read version 0, the
// first to update wins, the second finds the version moved and gets
// ErrStale. Retried, it sees the new state and changes nothing more, so
// the saga ends with exactly one request for step two.
func TestConcurrentRepliesOptimisticLock(t *testing.T) {
	t.Parallel()
	o, pool := newOrchestrator(t)
	ctx := context.Background()
	id := uuid.New()
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := o.Start(ctx, tx, "two-step", id, json.RawMessage(`{}`), txNow(t, tx))
		return err
	}); err != nil {
		t.Fatal(err)
	}

	txA, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer txA.Rollback(ctx)
	txB, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer txB.Rollback(ctx)

	// A applies the reply and holds the row lock until it commits.
	if _, changed, err := o.Handle(ctx, txA, id, "one", reply(saga.StepSucceeded), replyCause("one")); err != nil || !changed {
		t.Fatalf("winner: changed=%v err=%v", changed, err)
	}
	// B loads version 0 (A has not committed) and its guarded UPDATE waits
	// for A's row lock.
	done := make(chan error, 1)
	go func() {
		_, _, err := o.Handle(ctx, txB, id, "one", reply(saga.StepSucceeded), replyCause("one"))
		done <- err
	}()
	pidB := txB.Conn().PgConn().PID()
	testenv.AwaitLockWait(t, pool, pidB, "transaction B, on the saga row")
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Once A commits, B's UPDATE re-checks the version and matches no row.
	if err := <-done; !errors.Is(err, saga.ErrStale) {
		t.Fatalf("loser: err = %v, want ErrStale", err)
	}
	if !saga.IsRetryable(fmt.Errorf("wrapped: %w", saga.ErrStale)) {
		t.Fatal("ErrStale is not retryable")
	}
	_ = txB.Rollback(ctx)

	// The retry, in a fresh transaction, sees version 1 and ignores the reply.
	s, changed := handle(t, pool, o, id, "one", saga.StepSucceeded)
	if changed || s.Version != 1 {
		t.Fatalf("retry changed the saga: changed=%v %+v", changed, s)
	}
	n := 0
	for _, r := range outboxRows(t, pool) {
		if r.AggregateType == "two" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("step two requested %d times, want 1", n)
	}
}

// Saga ids are UUIDv7: a later saga's id sorts after an earlier one's, so
// the indexes keyed by saga id take new sagas at their end.
func TestNewIDIsTimeOrdered(t *testing.T) {
	t.Parallel()
	prev := saga.NewID()
	for range 1000 {
		id := saga.NewID()
		if id.Version() != 7 {
			t.Fatalf("%s: version %d, want 7", id, id.Version())
		}
		if bytes.Compare(id[:], prev[:]) <= 0 {
			t.Fatalf("%s made after %s sorts before it", id, prev)
		}
		prev = id
	}
}
