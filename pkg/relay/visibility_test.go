package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/internal/pgcluster"
	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/outbox"
)

// Why a reply can reach the order service before the saga it answers is
// visible there. PostgreSQL commits in two moves (xact.c,
// CommitTransaction): RecordTransactionCommit writes the commit record and
// flushes the WAL up to it — and the flush wakes the walsenders, whose
// logical decoding streams the transaction at once — then
// ProcArrayEndTransaction makes it visible to other sessions' snapshots. In
// between, the committing backend can be descheduled (2 busy cores), wait
// for a synchronous standby, or be slowed by anything else; the relay
// publishes meanwhile, and a participant's answer can come back through
// Kafka before the gap closes. Debezium reads the same stream: it is a
// property of change data capture, not of this relay.
//
// The test holds that gap open (a synchronous standby that never comes,
// see testenv.HeldCommitDatabase) and shows the relay publishing an outbox
// row that no other session can see yet; once released, the row is there.
// Nothing downstream may assume that what a message answers is visible
// when the message arrives (pkg/consumer's Early, pkg/saga's
// ErrEarlyReply).
func TestRelayPublishesACommitBeforeItIsVisible(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testenv.HeldCommitDatabase(t, migrations.Order())
	f := &fixture{dbURL: dbURL, pool: testenv.Pool(t, dbURL), logs: &logBuffer{}}
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	f.port = port
	f.startBroker(t)
	slot := f.slot(t)
	col := f.consume(t, "credit-approval.request")
	start(t, f.newRelay(t, loadConnector(t, "order-outbox"), slot))
	// Streaming first: creating a slot waits for the transactions in
	// progress, a held one among them.
	warm := event("credit-approval", "saga-0", "REQUEST")
	write(t, ctx, f.pool, warm)
	testenv.Eventually(t, 20*time.Second, func() bool { return col.has(warm) }, "the relay does not stream")

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	testenv.HoldCommits(t, conn)
	e := event("credit-approval", "saga-1", "REQUEST")
	committed := make(chan error, 1)
	go func() {
		committed <- pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return outbox.Write(ctx, tx, e) })
	}()

	testenv.Eventually(t, 20*time.Second, func() bool { return col.has(e) }, "the relay did not publish the held commit")
	visible := func() bool {
		var n int
		if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM outboxevent WHERE id = $1`, e.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	if visible() {
		t.Fatal("the row is visible to another session: the commit was not held")
	}
	if n := testenv.HeldCommits(t, f.pool); n != 1 {
		t.Fatalf("%d sessions wait with a flushed commit, want 1", n)
	}
	select {
	case err := <-committed:
		t.Fatalf("the commit returned while held: %v", err)
	default:
	}

	testenv.ReleaseHeld(t, f.pool)
	if err := <-committed; err != nil {
		t.Fatalf("commit: %v", err)
	}
	if !visible() {
		t.Error("the row is not visible once its commit returned")
	}
}
