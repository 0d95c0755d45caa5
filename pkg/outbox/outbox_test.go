package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/trace"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/outbox"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestWrite: events are stored in the caller's transaction (a rollback
// leaves nothing) with the W3C trace context of ctx, without any global
// propagator; an event without an id gets one; a payload that is not JSON is
// refused.
func TestWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Pool(t, testenv.Database(t, migrations.Order()))
	ts, err := trace.ParseTraceState("vendor=x,other=y")
	if err != nil {
		t.Fatal(err)
	}
	traced := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
		TraceState: ts,
	}))
	withID := outbox.Event{ID: uuid.New(), AggregateType: "payment", AggregateID: "saga-1", Type: "REQUEST", Payload: []byte(`{"a":1}`)}
	noID := outbox.Event{AggregateType: "payment", AggregateID: "saga-2", Type: "CANCEL", Payload: []byte(`{}`)}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return outbox.Write(traced, tx, withID) }); err != nil {
		t.Fatal(err)
	}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return outbox.Write(ctx, tx, noID) }); err != nil {
		t.Fatal(err)
	}
	rolledBack := withID
	rolledBack.ID = uuid.New()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := outbox.Write(ctx, tx, rolledBack); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return outbox.Write(ctx, tx, outbox.Event{AggregateType: "payment", AggregateID: "s", Type: "X", Payload: []byte(`{`)})
	})
	if err == nil {
		t.Error("Write accepted a payload that is not JSON")
	}

	type row struct {
		ID                      uuid.UUID
		AggregateID, Type       string
		Payload                 string
		TraceParent, TraceState *string
	}
	rows, _ := pool.Query(ctx, `SELECT id, aggregateid, type, payload::text, traceparent, tracestate FROM outboxevent ORDER BY aggregateid`)
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("rows = %+v, want 2", got)
	}
	if got[1].ID == uuid.Nil {
		t.Error("the event without an id got none")
	}
	got[1].ID = uuid.Nil
	tp, tstate := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "vendor=x,other=y"
	want := []row{
		{ID: withID.ID, AggregateID: "saga-1", Type: "REQUEST", Payload: `{"a": 1}`, TraceParent: &tp, TraceState: &tstate},
		{AggregateID: "saga-2", Type: "CANCEL", Payload: `{}`},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outbox rows (-want +got):\n%s", diff)
	}
}

// TestMarkConsumed: the first record of an event id in a consumer's
// transaction reports true, a redelivery false.
func TestMarkConsumed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Pool(t, testenv.Database(t, migrations.Order()))
	id := uuid.New()
	for i, want := range []bool{true, false} {
		var first bool
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			first, err = outbox.MarkConsumed(ctx, tx, "order", id)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if first != want {
			t.Errorf("delivery %d: first = %v, want %v", i+1, first, want)
		}
	}
}

// TestMarkConsumedAll: one statement journals several ids; an id already
// journaled, or given twice, is first at most once; another consumer's
// journal is its own.
func TestMarkConsumedAll(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Pool(t, testenv.Database(t, migrations.Order()))
	old, a, b := uuid.New(), uuid.New(), uuid.New()
	mark := func(consumer string, ids ...uuid.UUID) map[uuid.UUID]bool {
		t.Helper()
		var first map[uuid.UUID]bool
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			first, err = outbox.MarkConsumedAll(ctx, tx, consumer, ids)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return first
	}
	mark("order", old)
	if diff := cmp.Diff(map[uuid.UUID]bool{a: true, b: true}, mark("order", old, a, b, a)); diff != "" {
		t.Errorf("first (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[uuid.UUID]bool{old: true}, mark("audit", old)); diff != "" {
		t.Errorf("another consumer (-want +got):\n%s", diff)
	}
}

// TestPrune: rows older than the retention are deleted, newer ones kept.
func TestPrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Pool(t, testenv.Database(t, migrations.Order()))
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return outbox.Write(ctx, tx,
			outbox.Event{AggregateType: "payment", AggregateID: "old", Type: "X", Payload: []byte(`{}`)},
			outbox.Event{AggregateType: "payment", AggregateID: "new", Type: "X", Payload: []byte(`{}`)})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE outboxevent SET created_at = now() - interval '2 hours' WHERE aggregateid = 'old'`); err != nil {
		t.Fatal(err)
	}
	n, err := outbox.Prune(ctx, pool, time.Hour, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	rows, _ := pool.Query(ctx, `SELECT aggregateid FROM outboxevent`)
	if left, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if n != 1 || !cmp.Equal(left, []string{"new"}) {
		t.Errorf("pruned %d, left %v; want 1 and [new]", n, left)
	}
}
