package app_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/services/order/internal/app"
)

// The race of a reply that outruns its saga, made deterministic, through a
// real broker, the real consumer and Postgres. Change data capture
// publishes a commit as soon as it is in the WAL, before the committing
// session has made it visible to others (PostgreSQL flushes the commit
// record first; pkg/relay's TestRelayPublishesACommitBeforeItIsVisible
// shows it), so a participant's answer can reach the order service while
// what it answers is not visible there yet. Here the test holds that state
// back itself:
//
//   - the credit approval arrives while the transaction that starts its saga
//     is still open (no saga visible);
//   - the payment reply arrives before the credit approval that requests the
//     payment was applied (a step not started).
//
// Each is waited for, applied once when what it answers shows up, nothing
// is parked and no deadline is needed: the saga ends in well under its
// step deadline, and its history has no retry or timeout.
func TestReplyAheadOfItsSagaIsAppliedOnceItIsVisible(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, pool := newApp(t)
	broker, _ := testenv.Kafka(t)
	topics := app.ReplyTopics()
	admin, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := kadm.NewClient(admin).CreateTopics(ctx, 4, -1, nil, topics...); err != nil {
		t.Fatal(err)
	}

	var early, parked, applied atomic.Int32
	c, err := consumer.New(consumer.Config{
		Group: "order-service", Topics: topics, Pool: pool, Handler: a.Sagas().OnReply, Retryable: saga.IsRetryable,
		Logger: slog.New(slog.DiscardHandler), CommitInterval: 50 * time.Millisecond,
		Observer: func(_ string, o consumer.Outcome) {
			switch o {
			case consumer.RecordEarly:
				early.Add(1)
			case consumer.RecordParked:
				parked.Add(1)
			case consumer.RecordApplied:
				applied.Add(1)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(c.Opts(), kgo.SeedBrokers(broker))...)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx, cl) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("consumer: %v", err)
		}
		cl.Close()
	})
	reply := func(step, sagaID, status string) {
		t.Helper()
		r := &kgo.Record{Topic: step + ".response", Key: []byte(sagaID), Value: []byte(`{"status":"` + status + `"}`),
			Headers: []kgo.RecordHeader{{Key: "id", Value: []byte(uuid.NewString())}, {Key: "eventType", Value: []byte("Updated")}}}
		if err := admin.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	// The saga's start, held uncommitted while its reply arrives.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	o, err := a.PlaceOrderIn(ctx, tx, validOrder)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	reply(stepCredit, o.SagaID.String(), "APPROVED")
	testenv.Eventually(t, 10*time.Second, func() bool { return early.Load() == 1 }, "the credit approval was not found early")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		s, err := saga.Load(ctx, pool, o.SagaID)
		return err == nil && s.StepStatus[stepPayment] == saga.StepStarted
	}, "the credit approval was not applied once its saga was visible")

	// A second saga: its payment reply comes before the credit approval
	// that requests the payment.
	o2 := place(t, a)
	reply(stepPayment, o2.SagaID.String(), "REQUESTED")
	testenv.Eventually(t, 10*time.Second, func() bool { return early.Load() == 2 }, "the payment reply was not found early")
	reply(stepCredit, o2.SagaID.String(), "APPROVED")
	reply(stepPayment, o.SagaID.String(), "REQUESTED")
	for _, s := range []uuid.UUID{o.SagaID, o2.SagaID} {
		testenv.Eventually(t, 10*time.Second, func() bool {
			st, err := saga.Load(ctx, pool, s)
			return err == nil && st.Status == saga.StatusSucceeded
		}, "saga %s did not succeed", s)
	}
	took := time.Since(began)
	if took >= app.DefaultSettings().StepTimeout {
		t.Fatalf("the sagas took %s, as long as a step deadline", took)
	}
	if p := parked.Load(); p != 0 {
		t.Errorf("%d messages parked, want none", p)
	}
	if n := applied.Load(); n != 4 {
		t.Errorf("%d replies applied, want 4 (each once)", n)
	}
	for _, s := range []uuid.UUID{o.SagaID, o2.SagaID} {
		h, err := saga.History(ctx, pool, s)
		if err != nil {
			t.Fatal(err)
		}
		replies := map[int]bool{} // transitions, by the version they made
		for _, e := range h {
			switch e.Cause.Kind {
			case saga.CauseRetry, saga.CauseTimeout:
				t.Errorf("saga %s: history has a %s entry: %+v", s, e.Cause.Kind, e)
			case saga.CauseReply:
				replies[e.Version] = true
			}
		}
		if len(replies) != 2 {
			t.Errorf("saga %s: %d reply transitions, want 2", s, len(replies))
		}
	}
	var accepted int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM purchaseorder WHERE status = 'ACCEPTED'`).Scan(&accepted); err != nil {
		t.Fatal(err)
	}
	if accepted != 2 {
		t.Errorf("%d orders ACCEPTED, want 2", accepted)
	}
}
