package relay_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel/trace"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/outbox"
	"github.com/sagabox/sagabox/pkg/relay"
)

// Environment of the crash test's child process (see runChildRelay).
const (
	envChild       = "OUTBOX_TEST_CHILD_RELAY"
	envChildDB     = "OUTBOX_TEST_CHILD_DB"
	envChildBroker = "OUTBOX_TEST_CHILD_BROKER"
	envChildSlot   = "OUTBOX_TEST_CHILD_SLOT"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		os.Exit(runChildRelay())
	}
	testenv.Main(m)
}

// runChildRelay runs the order-outbox relay until the process is killed,
// restarting it after failures like a supervisor would.
func runChildRelay() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := relay.LoadConnector(filepath.Join(connectorsDir, "order-outbox.json"))
	if err != nil {
		log.Error("load connector", "err", err)
		return 2
	}
	c.SlotName = os.Getenv(envChildSlot)
	producer, err := kgo.NewClient(kgo.SeedBrokers(os.Getenv(envChildBroker)), kgo.AllowAutoTopicCreation())
	if err != nil {
		log.Error("create producer", "err", err)
		return 2
	}
	r, err := relay.NewRelay(relay.RelayConfig{
		Connector: c, ConnString: os.Getenv(envChildDB), Kafka: producer, Logger: log, StandbyTimeout: time.Second,
	})
	if err != nil {
		log.Error("create relay", "err", err)
		return 2
	}
	for {
		err := r.Run(context.Background())
		log.Error("relay failed", "err", err)
		time.Sleep(100 * time.Millisecond)
	}
}

// fixture is one test's database, broker and consumer.
type fixture struct {
	dbURL  string
	pool   *pgxpool.Pool
	broker string
	kafka  *kfake.Cluster
}

// newFixture creates a migrated order database and a broker.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	dbURL := testenv.Database(t, migrations.Order())
	broker, cluster := testenv.Kafka(t)
	return &fixture{dbURL: dbURL, pool: testenv.Pool(t, dbURL), broker: broker, kafka: cluster}
}

// newRelay builds a relay for the named connector file on a unique slot of
// the test database. The slot is dropped when the test ends.
func (f *fixture) newRelay(t *testing.T, connector, slot string, opts ...kgo.Opt) *relay.Relay {
	t.Helper()
	c, err := relay.LoadConnector(filepath.Join(connectorsDir, connector+".json"))
	if err != nil {
		t.Fatal(err)
	}
	c.SlotName = slot
	producer, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(f.broker), kgo.AllowAutoTopicCreation()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	r, err := relay.NewRelay(relay.RelayConfig{
		Connector: c, ConnString: f.dbURL, Kafka: producer, StandbyTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// slot returns a unique slot name, dropped (once inactive) at the end of
// the test; register it before starting relays so it is dropped after them.
func (f *fixture) slot(t *testing.T) string {
	t.Helper()
	name := testenv.Name("slot")
	t.Cleanup(func() {
		ctx := context.Background()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			var left int
			err := f.pool.QueryRow(ctx, `WITH d AS (SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
				WHERE slot_name = $1 AND NOT active) SELECT count(*) FROM pg_replication_slots, (SELECT count(*) FROM d) x
				WHERE slot_name = $1 AND active`, name).Scan(&left)
			if err == nil && left == 0 {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("slot %s still active at cleanup", name)
	})
	return name
}

// start sets r up (so rows written from now on are captured) and runs it
// until the returned stop is called or the test ends; stop returns Run's
// result, which must be nil.
func start(t *testing.T, r *relay.Relay) (stop func() error) {
	t.Helper()
	if err := r.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() { result <- r.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-result:
			case <-time.After(30 * time.Second):
				err = errors.New("relay did not stop within 30s")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("relay: %v", err)
		}
	})
	return stop
}

// collector consumes topics from the start into memory.
type collector struct {
	mu   sync.Mutex
	recs []*kgo.Record
}

func (f *fixture) consume(t *testing.T, topics ...string) *collector {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(f.broker),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AllowAutoTopicCreation(),
		kgo.MetadataMinAge(50*time.Millisecond),
		kgo.MetadataMaxAge(200*time.Millisecond),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				col.mu.Lock()
				col.recs = append(col.recs, r)
				col.mu.Unlock()
			})
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		cl.Close()
	})
	return col
}

func (c *collector) records() []*kgo.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.recs)
}

// ids returns the distinct "id" headers seen and the number of records.
func (c *collector) ids() (map[string]int, int) {
	recs := c.records()
	ids := map[string]int{}
	for _, r := range recs {
		ids[header(r, "id")]++
	}
	return ids, len(recs)
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// got is a consumed record in comparable form.
type got struct {
	Topic   string
	Key     string
	Value   string
	Headers []relay.Header
}

func simplify(r *kgo.Record) got {
	g := got{Topic: r.Topic, Key: string(r.Key), Value: string(r.Value)}
	for _, h := range r.Headers {
		g.Headers = append(g.Headers, relay.Header{Key: h.Key, Value: h.Value})
	}
	return g
}

// write commits events in one transaction and returns the WAL position
// just before the commit: a position confirming the transaction exceeds it.
func write(t *testing.T, ctx context.Context, pool *pgxpool.Pool, events ...outbox.Event) pglogrepl.LSN {
	t.Helper()
	var before pglogrepl.LSN
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := outbox.Write(ctx, tx, events...); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()`).Scan(&before)
	})
	if err != nil {
		t.Fatalf("write outbox: %v", err)
	}
	return before
}

func event(aggregateType, aggregateID, typ string) outbox.Event {
	return outbox.Event{
		ID: uuid.New(), AggregateType: aggregateType, AggregateID: aggregateID, Type: typ,
		Payload: []byte(fmt.Sprintf(`{"saga": %q, "type": %q}`, aggregateID, typ)),
	}
}

// tracedContext carries a fixed sampled span context with a trace state.
func tracedContext(t *testing.T) (context.Context, string, string) {
	t.Helper()
	ts, err := trace.ParseTraceState("vendor=x")
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
		TraceState: ts,
	})
	return trace.ContextWithSpanContext(context.Background(), sc),
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "vendor=x"
}

func wantRecord(topic string, e outbox.Event, traceparent, tracestate string) got {
	opt := func(s string) []byte {
		if s == "" {
			return nil
		}
		return []byte(s)
	}
	return got{
		Topic: topic, Key: e.AggregateID,
		// jsonb normalises the payload's spacing.
		Value: fmt.Sprintf(`{"saga": %q, "type": %q}`, e.AggregateID, e.Type),
		Headers: []relay.Header{
			{Key: "id", Value: []byte(e.ID.String())},
			{Key: "eventType", Value: []byte(e.Type)},
			{Key: "traceparent", Value: opt(traceparent)},
			{Key: "tracestate", Value: opt(tracestate)},
		},
	}
}

// TestRelayPublishesCommittedInserts: rows from several transactions (one
// with several rows) arrive routed like Debezium's EventRouter, with the
// trace context in headers, in commit order per key; the confirmed
// position passes a transaction once it is delivered.
func TestRelayPublishesCommittedInserts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.newRelay(t, "order-outbox", f.slot(t))
	col := f.consume(t, "credit-approval.request", "payment.request")
	start(t, r)

	ctx, traceparent, tracestate := tracedContext(t)
	e1, e2 := event("credit-approval", "saga-a", "REQUEST"), event("payment", "saga-a", "REQUEST")
	e3 := event("credit-approval", "saga-b", "REQUEST")
	e4 := event("credit-approval", "saga-a", "CANCEL")
	e5 := event("payment", "saga-b", "REQUEST")
	write(t, ctx, f.pool, e1, e2) // one transaction, two rows
	write(t, context.Background(), f.pool, e3)
	write(t, ctx, f.pool, e4)
	last := write(t, context.Background(), f.pool, e5)

	testenv.Eventually(t, 20*time.Second, func() bool { return len(col.records()) >= 5 }, "5 records")
	testenv.Eventually(t, 10*time.Second, func() bool { return r.Confirmed() > last },
		"confirmed position passes the last delivered transaction (%s)", last)

	// Per topic and key, in partition order.
	byKey := map[string][]got{}
	for _, rec := range col.records() {
		k := rec.Topic + "/" + string(rec.Key)
		byKey[k] = append(byKey[k], simplify(rec))
	}
	want := map[string][]got{
		"credit-approval.request/saga-a": {
			wantRecord("credit-approval.request", e1, traceparent, tracestate),
			wantRecord("credit-approval.request", e4, traceparent, tracestate),
		},
		"credit-approval.request/saga-b": {wantRecord("credit-approval.request", e3, "", "")},
		"payment.request/saga-a":         {wantRecord("payment.request", e2, traceparent, tracestate)},
		"payment.request/saga-b":         {wantRecord("payment.request", e5, "", "")},
	}
	if diff := cmp.Diff(want, byKey); diff != "" {
		t.Errorf("records per topic/key (-want +got):\n%s", diff)
	}
}

// TestRelaySkipsRollbacksUpdatesAndDeletes: a rolled-back transaction, an
// update of an outbox row and pruning publish nothing; later committed
// markers (same key, so same partition and after anything earlier) prove it.
func TestRelaySkipsRollbacksUpdatesAndDeletes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.newRelay(t, "order-outbox", f.slot(t))
	col := f.consume(t, "credit-approval.request")
	start(t, r)
	ctx := context.Background()

	// Rolled back.
	tx, err := f.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := outbox.Write(ctx, tx, event("credit-approval", "saga", "ROLLED-BACK")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	m1 := event("credit-approval", "saga", "MARKER-1")
	write(t, ctx, f.pool, m1)
	waitIDs := func(want ...outbox.Event) {
		t.Helper()
		testenv.Eventually(t, 20*time.Second, func() bool { return len(col.records()) >= len(want) }, "%d records", len(want))
		var gotIDs, wantIDs []string
		for _, rec := range col.records() {
			gotIDs = append(gotIDs, header(rec, "id")+" "+header(rec, "eventType"))
		}
		for _, e := range want {
			wantIDs = append(wantIDs, e.ID.String()+" "+e.Type)
		}
		if diff := cmp.Diff(wantIDs, gotIDs); diff != "" {
			t.Fatalf("published records (-want +got):\n%s", diff)
		}
	}
	waitIDs(m1)

	// Updated (table.op.invalid.behavior=warn: skipped) and pruned.
	if _, err := f.pool.Exec(ctx, `UPDATE outboxevent SET type = 'UPDATED'`); err != nil {
		t.Fatal(err)
	}
	n, err := outbox.Prune(ctx, f.pool, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("pruned %d rows, want 1", n)
	}
	m2 := event("credit-approval", "saga", "MARKER-2")
	write(t, ctx, f.pool, m2)
	waitIDs(m1, m2)
}

// TestRelayRestartResumesFromConfirmedPosition: rows written while no relay
// runs are delivered by the next relay on the same slot, and the confirmed
// position does not pass a transaction whose records Kafka has not yet
// acknowledged.
func TestRelayRestartResumesFromConfirmedPosition(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	slot := f.slot(t)
	col := f.consume(t, "credit-approval.request")
	ctx := context.Background()
	var inserted []outbox.Event
	writeN := func(n int) (firstBefore, lastBefore pglogrepl.LSN) {
		for i := range n {
			e := event("credit-approval", fmt.Sprintf("saga-%d", len(inserted)%3), "REQUEST")
			inserted = append(inserted, e)
			lsn := write(t, ctx, f.pool, e)
			if i == 0 {
				firstBefore = lsn
			}
			lastBefore = lsn
		}
		return firstBefore, lastBefore
	}
	allDelivered := func() bool {
		ids, _ := col.ids()
		for _, e := range inserted {
			if ids[e.ID.String()] == 0 {
				return false
			}
		}
		return true
	}

	r1 := f.newRelay(t, "order-outbox", slot)
	stop1 := start(t, r1)
	_, last1 := writeN(5)
	testenv.Eventually(t, 20*time.Second, allDelivered, "first batch delivered")
	testenv.Eventually(t, 10*time.Second, func() bool { return r1.Confirmed() > last1 }, "first relay confirms its batch")
	if err := stop1(); err != nil {
		t.Fatalf("stop first relay: %v", err)
	}
	stopped := r1.Confirmed()
	var slotLSN pglogrepl.LSN
	testenv.Eventually(t, 10*time.Second, func() bool {
		err := f.pool.QueryRow(ctx, `SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&slotLSN)
		return err == nil && slotLSN >= stopped
	}, "slot confirmed position reaches %s", stopped)

	// Written while stopped.
	first2, last2 := writeN(5)
	if stopped > first2 {
		t.Fatalf("first relay confirmed %s, beyond rows written after it stopped (%s)", stopped, first2)
	}

	// Hold the produce requests of the second relay until released.
	held := make(chan struct{})
	release := make(chan struct{})
	var heldOnce, released atomic.Bool
	f.kafka.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		f.kafka.KeepControl()
		if released.Load() {
			return nil, nil, false
		}
		if heldOnce.CompareAndSwap(false, true) {
			close(held)
		}
		f.kafka.SleepControl(func() { <-release })
		return nil, nil, false
	})
	r2 := f.newRelay(t, "order-outbox", slot)
	start(t, r2)
	select {
	case <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("second relay produced nothing")
	}
	// While Kafka holds the records, the position must not pass them. Watch
	// for a few status intervals.
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got := r2.Confirmed(); got > first2 {
			t.Fatalf("confirmed %s before Kafka acknowledged the transaction before %s", got, first2)
		}
	}
	released.Store(true)
	close(release)
	testenv.Eventually(t, 20*time.Second, allDelivered, "second batch delivered")
	testenv.Eventually(t, 10*time.Second, func() bool { return r2.Confirmed() > last2 }, "second relay confirms its batch")
	ids, n := col.ids()
	t.Logf("inserted %d rows, consumed %d records, %d distinct ids", len(inserted), n, len(ids))
	if len(ids) != len(inserted) {
		t.Errorf("distinct ids = %d, want %d", len(ids), len(inserted))
	}
}

// TestRelaySurvivesCrash: a relay process killed with SIGKILL mid-stream
// loses nothing; its successor on the same slot delivers every row that
// committed (some possibly twice).
func TestRelaySurvivesCrash(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("spawns relay processes")
	}
	f := newFixture(t)
	slot := f.slot(t)
	// Create the slot before writing: rows committed earlier are not captured.
	if err := f.newRelay(t, "order-outbox", slot).Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	col := f.consume(t, "credit-approval.request")
	spawn := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), envChild+"=1", envChildDB+"="+f.dbURL, envChildBroker+"="+f.broker, envChildSlot+"="+slot)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start relay process: %v", err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		return cmd
	}

	var (
		mu       sync.Mutex
		inserted []string
	)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(inserted)
	}
	ctx, stopWriting := context.WithCancel(context.Background())
	writerDone := make(chan error, 1)
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			n := 1 + i%3 // transactions of one to three rows
			events := make([]outbox.Event, n)
			for j := range events {
				events[j] = event("credit-approval", fmt.Sprintf("saga-%d", i%7), "REQUEST")
			}
			err := pgx.BeginFunc(context.Background(), f.pool, func(tx pgx.Tx) error {
				return outbox.Write(context.Background(), tx, events...)
			})
			if err != nil {
				writerDone <- err
				return
			}
			mu.Lock()
			for _, e := range events {
				inserted = append(inserted, e.ID.String())
			}
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
		writerDone <- nil
	}()
	defer stopWriting()

	child := spawn()
	testenv.Eventually(t, 30*time.Second, func() bool { return len(col.records()) >= 150 }, "first process delivers")
	if err := child.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = child.Wait()
	_, atKill := col.ids()
	insertedAtKill := count()
	testenv.Eventually(t, 30*time.Second, func() bool { return count() >= insertedAtKill+200 }, "rows written while no relay runs")
	spawn()
	testenv.Eventually(t, 30*time.Second, func() bool { return len(col.records()) >= count()-50 && count() > insertedAtKill+400 },
		"second process catches up")
	stopWriting()
	if err := <-writerDone; err != nil {
		t.Fatalf("writer: %v", err)
	}
	total := count()
	mu.Lock()
	want := slices.Clone(inserted)
	mu.Unlock()
	testenv.Eventually(t, 30*time.Second, func() bool {
		ids, _ := col.ids()
		for _, id := range want {
			if ids[id] == 0 {
				return false
			}
		}
		return true
	}, "every inserted id delivered")
	ids, n := col.ids()
	t.Logf("inserted %d rows; consumed %d records (%d at the kill), %d distinct ids, %d duplicates",
		total, n, atKill, len(ids), n-len(ids))
	if len(ids) != total {
		t.Errorf("distinct ids = %d, want %d", len(ids), total)
	}
}

// TestRelayFailsWhenKafkaIsUnreachable: produce errors end Run with an error
// in bounded time and nothing undelivered is confirmed.
func TestRelayFailsWhenKafkaIsUnreachable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	c, err := relay.LoadConnector(filepath.Join(connectorsDir, "order-outbox.json"))
	if err != nil {
		t.Fatal(err)
	}
	c.SlotName = f.slot(t)
	producer, err := kgo.NewClient(kgo.SeedBrokers(closed), kgo.RecordDeliveryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	r, err := relay.NewRelay(relay.RelayConfig{
		Connector: c, ConnString: f.dbURL, Kafka: producer, StandbyTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Setup(ctx); err != nil { // idempotent
		t.Fatalf("second setup: %v", err)
	}
	before := write(t, ctx, f.pool, event("credit-approval", "saga", "REQUEST"))
	began := time.Now()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	select {
	case err := <-done:
		t.Logf("Run returned after %s: %v", time.Since(began).Round(time.Millisecond), err)
		if err == nil {
			t.Fatal("Run returned nil, want a produce error")
		}
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatal("Run did not fail within 30s")
	}
	if got := r.Confirmed(); got > before {
		t.Errorf("confirmed %s, beyond the undelivered transaction (before %s)", got, before)
	}
	var slotLSN pglogrepl.LSN
	if err := f.pool.QueryRow(ctx, `SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1`, c.SlotName).Scan(&slotLSN); err != nil {
		t.Fatal(err)
	}
	if slotLSN > before {
		t.Errorf("slot confirmed %s, beyond the undelivered transaction (before %s)", slotLSN, before)
	}
}

// TestRelayExtractNewRecordState: the sagastate connector publishes inserts
// and updates as flat JSON rows keyed by the primary key; deletes are not
// published.
func TestRelayExtractNewRecordState(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.newRelay(t, "order-sagastate", f.slot(t))
	col := f.consume(t, "sagas.public.sagastate")
	start(t, r)
	ctx := context.Background()
	id, other := uuid.New(), uuid.New()
	const insert = `INSERT INTO sagastate (id, type, payload, current_step, step_status, status, created_at, updated_at)
		VALUES ($1, 'order-placement', '{"order_id":1}', 'credit-approval', '{"credit-approval":"STARTED"}', 'STARTED',
		'2024-05-01 12:00:00.5+00', '2024-05-01 12:00:00.5+00')`
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := f.pool.Exec(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec(insert, id)
	exec(`UPDATE sagastate SET status = 'SUCCEEDED', version = version + 1, updated_at = '2024-05-01 12:00:01+00' WHERE id = $1`, id)
	exec(`DELETE FROM sagastate WHERE id = $1`, id)
	exec(insert, other)

	testenv.Eventually(t, 20*time.Second, func() bool { return len(col.records()) >= 3 }, "3 records")
	row := func(id uuid.UUID, status string, version int, updated string) string {
		return fmt.Sprintf(`{"id":"%s","type":"order-placement","payload":"{\"order_id\": 1}","current_step":"credit-approval",`+
			`"step_status":"{\"credit-approval\": \"STARTED\"}","status":"%s","version":%d,`+
			`"created_at":"2024-05-01T12:00:00.5Z","updated_at":"%s"}`, id, status, version, updated)
	}
	key := func(id uuid.UUID) string { return fmt.Sprintf(`{"id":"%s"}`, id) }
	var gotRecs []got
	for _, rec := range col.records() {
		gotRecs = append(gotRecs, simplify(rec))
	}
	// Two keys may sit on two partitions: compare per key.
	slices.SortStableFunc(gotRecs, func(a, b got) int {
		if a.Key == key(id) && b.Key != key(id) {
			return -1
		}
		if a.Key != key(id) && b.Key == key(id) {
			return 1
		}
		return 0
	})
	want := []got{
		{Topic: "sagas.public.sagastate", Key: key(id), Value: row(id, "STARTED", 0, "2024-05-01T12:00:00.5Z")},
		{Topic: "sagas.public.sagastate", Key: key(id), Value: row(id, "SUCCEEDED", 1, "2024-05-01T12:00:01Z")},
		{Topic: "sagas.public.sagastate", Key: key(other), Value: row(other, "STARTED", 0, "2024-05-01T12:00:00.5Z")},
	}
	if diff := cmp.Diff(want, gotRecs); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}
