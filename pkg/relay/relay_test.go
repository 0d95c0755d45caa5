package relay_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pglogrepl"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/pkg/outbox"
	"github.com/sagabox/sagabox/pkg/relay"
)

// TestRelayPublishesCommittedInsertsInCommitOrder: rows from several
// transactions (one with several rows) arrive in commit order per key; the
// confirmed position passes a transaction once it is delivered and
// checkpointed; the topics were created by the relay with 4 partitions.
func TestRelayPublishesCommittedInsertsInCommitOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	slot := f.slot(t)
	r := f.newRelay(t, loadConnector(t, "order-outbox"), slot)
	if err := r.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	col := f.consume(t, "credit-approval.request", "payment.request")
	start(t, r)

	ctx := context.Background()
	e1, e2 := event("credit-approval", "saga-a", "REQUEST"), event("payment", "saga-a", "REQUEST")
	e3 := event("credit-approval", "saga-b", "REQUEST")
	e4 := event("credit-approval", "saga-a", "CANCEL")
	e5 := event("payment", "saga-b", "REQUEST")
	write(t, ctx, f.pool, e1, e2) // one transaction, two rows
	write(t, ctx, f.pool, e3)
	write(t, ctx, f.pool, e4)
	last := write(t, ctx, f.pool, e5)

	testenv.Eventually(t, 20*time.Second, func() bool { return col.has(e1, e2, e3, e4, e5) }, "5 records")
	testenv.Eventually(t, 10*time.Second, func() bool { return r.Confirmed() > last },
		"confirmed position passes the last delivered transaction (%s)", last)

	byKey := map[string][]string{}
	for _, rec := range col.records() {
		k := rec.Topic + "/" + string(rec.Key)
		byKey[k] = append(byKey[k], header(rec, "id"))
	}
	want := map[string][]string{
		"credit-approval.request/saga-a": {e1.ID.String(), e4.ID.String()},
		"credit-approval.request/saga-b": {e3.ID.String()},
		"payment.request/saga-a":         {e2.ID.String()},
		"payment.request/saga-b":         {e5.ID.String()},
	}
	if diff := cmp.Diff(want, byKey); diff != "" {
		t.Errorf("ids per topic/key, in partition order (-want +got):\n%s", diff)
	}
	topics, err := kadm.NewClient(f.producer(t)).ListTopics(ctx, "credit-approval.request", "payment.request")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"credit-approval.request", "payment.request"} {
		if n := len(topics[name].Partitions); n != 4 {
			t.Errorf("topic %s has %d partitions, want 4 (created by the relay)", name, n)
		}
	}
	if ends := f.checkpointEnds(t, slot, "credit-approval.request"); sum(ends) != 3 {
		t.Errorf("checkpoint ends of credit-approval.request = %v, want 3 records in all", ends)
	}
}

// TestRelaySkipsRollbacksUpdatesAndDeletes: a rolled-back transaction, an
// update of an outbox row and pruning publish nothing; later committed
// markers (same key, so same partition and after anything earlier) prove it.
func TestRelaySkipsRollbacksUpdatesAndDeletes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.newRelay(t, loadConnector(t, "order-outbox"), f.slot(t))
	if err := r.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	col := f.consume(t, "credit-approval.request")
	start(t, r)
	ctx := context.Background()

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

	if _, err := f.pool.Exec(ctx, `UPDATE outboxevent SET type = 'UPDATED'`); err != nil {
		t.Fatal(err)
	}
	n, err := outbox.Prune(ctx, f.pool, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("pruned %d rows, want 1", n)
	}
	m2 := event("credit-approval", "saga", "MARKER-2")
	write(t, ctx, f.pool, m2)
	waitIDs(m1, m2)
	testenv.Eventually(t, 10*time.Second, func() bool { return len(f.logs.lines("outbox update skipped", "public.outboxevent")) == 1 },
		"the skipped update is logged once")
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
	allDelivered := func() bool { return col.has(inserted...) }

	c := loadConnector(t, "order-outbox")
	r1 := f.newRelay(t, c, slot)
	if err := r1.Setup(ctx); err != nil {
		t.Fatal(err)
	}
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
	r2 := f.newRelay(t, c, slot)
	start(t, r2)
	select {
	case <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("second relay produced nothing")
	}
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
	c := loadConnector(t, "order-outbox")
	c.SlotName = f.slot(t)
	producer, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(closed)}, relay.ProducerOptions()...),
		kgo.RetryTimeout(time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	r, err := relay.NewRelay(relay.Config{Connector: c, ConnString: f.dbURL, Kafka: producer, StandbyTimeout: time.Second,
		DeliveryTimeout: 2 * time.Second, Logger: f.logger(t)})
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

// TestRelayRefusesAutoCreatingProducer: a client that would create topics on
// demand (or partition on its own) is refused.
func TestRelayRefusesAutoCreatingProducer(t *testing.T) {
	t.Parallel()
	c := loadConnector(t, "order-outbox")
	for name, opts := range map[string][]kgo.Opt{
		"auto-creation":    append(relay.ProducerOptions(), kgo.AllowAutoTopicCreation()),
		"delivery timeout": append(relay.ProducerOptions(), kgo.RecordDeliveryTimeout(time.Second)),
		"own partitioner":  {kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil))},
	} {
		cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers("127.0.0.1:1"))...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := relay.NewRelay(relay.Config{Connector: c, Kafka: cl}); err == nil {
			t.Errorf("%s: NewRelay accepted the client", name)
		}
		cl.Close()
	}
}

// TestRelaySnapshotsExistingRows: rows committed before the connector first
// started are published by its first Run (snapshot.mode=initial), each once
// (the snapshot reads the slot's exported snapshot); rows after it are
// streamed; the next Run does not publish them again.
func TestRelaySnapshotsExistingRows(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	var before []outbox.Event
	for i := range 20 {
		e := event("credit-approval", fmt.Sprintf("saga-%d", i%4), "REQUEST")
		before = append(before, e)
		write(t, ctx, f.pool, e)
	}
	col := f.consume(t, "credit-approval.request")
	slot := f.slot(t)
	c := loadConnector(t, "order-outbox")
	r := f.newRelay(t, c, slot)
	stop := start(t, r)
	testenv.Eventually(t, 20*time.Second, func() bool { return col.has(before...) }, "existing rows published")
	after := event("credit-approval", "saga-x", "REQUEST")
	write(t, ctx, f.pool, after)
	testenv.Eventually(t, 20*time.Second, func() bool { return col.has(after) }, "a later row streamed")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	start(t, f.newRelay(t, c, slot))
	later := event("credit-approval", "saga-y", "REQUEST")
	write(t, ctx, f.pool, later)
	testenv.Eventually(t, 20*time.Second, func() bool { return col.has(later) }, "the second run streams")
	ids, n := col.ids()
	if n != len(before)+2 || len(ids) != n {
		t.Errorf("consumed %d records with %d distinct ids, want %d, each once", n, len(ids), len(before)+2)
	}
	if got := f.logs.lines("snapshot published", "rows=20"); len(got) != 1 {
		t.Errorf("snapshot log lines: %q, want one with rows=20", got)
	}
}

// TestRelayDeliversRecordsBeforeABadRow: an update of an outbox row under
// table.op.invalid.behavior=fatal stops Run with an error, and the records
// committed before it are delivered and confirmed first; every later Run
// stops at the same row.
func TestRelayDeliversRecordsBeforeABadRow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	c := loadConnector(t, "order-outbox")
	c.EventRouter.OnInvalidOp = relay.InvalidOpFatal
	slot := f.slot(t)
	r := f.newRelay(t, c, slot)
	if err := r.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	col := f.consume(t, "credit-approval.request")
	e1, e2 := event("credit-approval", "saga-1", "REQUEST"), event("credit-approval", "saga-2", "REQUEST")
	write(t, ctx, f.pool, e1, e2)
	var beforeBad pglogrepl.LSN
	if err := f.pool.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()`).Scan(&beforeBad); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(ctx, `UPDATE outboxevent SET type = 'UPDATED' WHERE id = $1`, e1.ID); err != nil {
		t.Fatal(err)
	}
	e3 := event("credit-approval", "saga-3", "REQUEST")
	write(t, ctx, f.pool, e3)
	for run := range 2 {
		err := r.Run(ctx)
		if err == nil || !strings.Contains(err.Error(), "unexpected update of outbox table public.outboxevent") {
			t.Fatalf("run %d: Run = %v, want the unexpected update", run, err)
		}
		testenv.Eventually(t, 10*time.Second, func() bool { return col.has(e1, e2) }, "records before the bad row delivered")
		if got := r.Confirmed(); got < beforeBad {
			t.Errorf("run %d: confirmed %s, want at least %s (the transaction before the bad row)", run, got, beforeBad)
		}
	}
	if col.has(e3) {
		t.Error("the row after the bad one was published")
	}
}

// TestRelayHeartbeat: with heartbeat.interval.ms the relay publishes
// Debezium's heartbeat records to __debezium-heartbeat.<topic.prefix>.
func TestRelayHeartbeat(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := loadConnector(t, "order-outbox")
	c.HeartbeatInterval = 200 * time.Millisecond
	col := f.consume(t, "__debezium-heartbeat.order")
	start(t, f.newRelay(t, c, f.slot(t)))
	testenv.Eventually(t, 20*time.Second, func() bool { return len(col.records()) >= 3 }, "3 heartbeats")
	for _, rec := range col.records() {
		if string(rec.Key) != "Struct{serverName=order}" || rec.Partition != 0 || len(rec.Headers) != 0 ||
			!strings.HasPrefix(string(rec.Value), "Struct{ts_ms=") {
			t.Errorf("heartbeat record: partition %d key %q value %q headers %v", rec.Partition, rec.Key, rec.Value, rec.Headers)
		}
	}
}
