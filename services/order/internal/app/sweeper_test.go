package app_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/services/order/internal/app"
	"github.com/sagabox/sagabox/services/order/internal/store"
)

// oneRetry is the default policy with a single retry.
func oneRetry() app.Settings {
	s := app.DefaultSettings()
	s.Retries = 1
	return s
}

// newAppWith returns the app over pool with settings s, given a fresh card
// key if s has none.
func newAppWith(t *testing.T, pool *pgxpool.Pool, s app.Settings) *app.App {
	t.Helper()
	if s.CardKeys.Empty() {
		_, s.CardKeys = testenv.CardKeys(t)
	}
	a, err := app.New(pool, slog.New(slog.DiscardHandler), s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// makeDue moves the deadlines of every waiting saga into the past, as the
// passing of time would.
func makeDue(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `UPDATE sagastate SET deadline = now() - interval '1 second' WHERE deadline IS NOT NULL`); err != nil {
		t.Fatal(err)
	}
}

func sweep(t *testing.T, a *app.App) int {
	t.Helper()
	n, err := a.Sagas().Sweep(context.Background(), a.Pool())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The payment service never answers: the payment request is sent once more,
// then the step is abandoned. The order is REJECTED at once; the credit is
// released first, then the payment cancelled (it may have been charged),
// and only the cancel's reply ends the saga.
func TestSweepRetriesThenAbandonsAndCompensates(t *testing.T) {
	t.Parallel()
	_, pool := newApp(t)
	a := newAppWith(t, pool, oneRetry())
	o := place(t, a)
	sid := o.SagaID.String()
	if err := onReply(t, pool, a, replyMessage(stepCredit, sid, "APPROVED")); err != nil {
		t.Fatal(err)
	}
	if n := sweep(t, a); n != 0 {
		t.Fatalf("swept %d sagas before any deadline", n)
	}
	type check struct {
		Order      string
		SagaStatus saga.Status
		Steps      map[string]saga.StepStatus
		Attempt    int
	}
	expect := func(when string, want check) {
		t.Helper()
		v, err := a.GetOrder(context.Background(), o.ID)
		if err != nil {
			t.Fatal(err)
		}
		got := check{v.Order.Status, v.Saga.Status, v.Saga.StepStatus, v.Saga.Attempt}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", when, diff)
		}
	}
	credit, payment := stepCredit, stepPayment

	makeDue(t, pool)
	if n := sweep(t, a); n != 1 {
		t.Fatalf("first deadline: swept %d sagas, want 1", n)
	}
	expect("after the first deadline", check{store.StatusCreated, saga.StatusStarted,
		map[string]saga.StepStatus{credit: saga.StepSucceeded, payment: saga.StepStarted}, 1})

	makeDue(t, pool)
	sweep(t, a)
	expect("after the retry's deadline", check{store.StatusRejected, saga.StatusAborting,
		map[string]saga.StepStatus{credit: saga.StepCompensating, payment: saga.StepAbandoned}, 0})

	if err := onReply(t, pool, a, replyMessage(credit, sid, "CANCELLED")); err != nil {
		t.Fatal(err)
	}
	expect("after the credit was released", check{store.StatusRejected, saga.StatusAborting,
		map[string]saga.StepStatus{credit: saga.StepCompensated, payment: saga.StepCompensating}, 0})
	// A late REQUESTED reply of the abandoned payment changes nothing.
	before := snapshot(t, pool, o)
	if err := onReply(t, pool, a, replyMessage(payment, sid, "REQUESTED")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, snapshot(t, pool, o)); diff != "" {
		t.Errorf("late payment reply changed the state (-before +after):\n%s", diff)
	}
	if err := onReply(t, pool, a, replyMessage(payment, sid, "CANCELLED")); err != nil {
		t.Fatal(err)
	}
	expect("after the payment was cancelled", check{store.StatusRejected, saga.StatusAborted,
		map[string]saga.StepStatus{credit: saga.StepCompensated, payment: saga.StepCompensated}, 0})

	wantOutbox := []message{
		want(o, credit, "REQUEST"),
		want(o, payment, "REQUEST"),
		want(o, payment, "REQUEST"),
		want(o, credit, "CANCEL"),
		want(o, payment, "CANCEL"),
	}
	if diff := cmp.Diff(wantOutbox, outboxRows(t, pool)); diff != "" {
		t.Errorf("outbox (-want +got):\n%s", diff)
	}
}

// A compensation whose reply does not come is sent again at every deadline,
// without end; the saga stays ABORTING and shows as stuck.
func TestSweepResendsCompensationForever(t *testing.T) {
	t.Parallel()
	_, pool := newApp(t)
	s := app.DefaultSettings()
	s.Retries = 0
	a := newAppWith(t, pool, s)
	o := place(t, a)
	makeDue(t, pool)
	sweep(t, a) // credit-approval abandoned: its own CANCEL is sent
	for i := 1; i <= 5; i++ {
		makeDue(t, pool)
		if n := sweep(t, a); n != 1 {
			t.Fatalf("deadline %d of the cancel: swept %d", i, n)
		}
	}
	v, err := a.GetOrder(context.Background(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v.Saga.Status != saga.StatusAborting || v.Saga.Attempt != 5 || v.Order.Status != store.StatusRejected {
		t.Errorf("saga %s attempt %d, order %s; want ABORTING at attempt 5, REJECTED", v.Saga.Status, v.Saga.Attempt, v.Order.Status)
	}
	cancels := 0
	for _, m := range outboxRows(t, pool) {
		if m.Type == "CANCEL" {
			cancels++
		}
	}
	if cancels != 6 {
		t.Errorf("%d cancels sent, want 6 (first + 5 re-sends)", cancels)
	}
	// Stuck: ABORTING for longer than the bound (15 min by default).
	stuck := func() int {
		t.Helper()
		states, _, err := saga.List(context.Background(), pool, saga.Filter{Stuck: true, StuckAfter: app.DefaultSettings().StuckAfter})
		if err != nil {
			t.Fatal(err)
		}
		return len(states)
	}
	if n := stuck(); n != 0 {
		t.Errorf("%d stuck sagas after a few minutes of ABORTING, want none", n)
	}
	if _, err := pool.Exec(context.Background(), `UPDATE sagastate SET status_since = now() - interval '16 minutes'`); err != nil {
		t.Fatal(err)
	}
	if n := stuck(); n != 1 {
		t.Errorf("%d stuck sagas after 16 minutes of ABORTING, want 1", n)
	}
}

// Two order-service instances (two apps, two pools, one database) sweep at
// the same time over many due sagas: each saga is acted on exactly once.
// The forced interleaving of two sweepers on one saga is in pkg/saga
// (TestTwoSweepersNeverActTwiceOnOneSaga).
func TestTwoInstancesSweepEachSagaOnce(t *testing.T) {
	t.Parallel()
	_, pool := newApp(t)
	a1 := newAppWith(t, pool, oneRetry())
	a2 := newAppWith(t, testenv.Pool(t, pool.Config().ConnString()), oneRetry())
	const n = 30
	for range n {
		place(t, a1)
	}
	makeDue(t, pool)
	var (
		wg    sync.WaitGroup
		swept [2]int
	)
	for i, a := range []*app.App{a1, a2} {
		wg.Go(func() {
			got, err := a.Sagas().Sweep(context.Background(), a.Pool())
			if err != nil {
				t.Error(err)
			}
			swept[i] = got
		})
	}
	wg.Wait()
	if swept[0]+swept[1] != n {
		t.Errorf("instances swept %v sagas, want %d in all", swept, n)
	}
	var retried int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM sagastate WHERE attempt = 1`).Scan(&retried); err != nil || retried != n {
		t.Errorf("%d sagas at attempt 1 (%v), want %d", retried, err, n)
	}
	var requests int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM outboxevent`).Scan(&requests); err != nil || requests != 2*n {
		t.Errorf("%d requests (%v), want %d", requests, err, 2*n)
	}
}

func TestLoadSettings(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	got, err := app.LoadSettings(env(nil))
	if diff := cmp.Diff(app.DefaultSettings(), got, cmpopts.IgnoreFields(app.Settings{}, "CardKeys")); err != nil || diff != "" {
		t.Errorf("empty environment (%v), -want +got:\n%s", err, diff)
	}
	// A step's own timeout is read by the step's name; the others wait
	// SAGA_STEP_TIMEOUT.
	got, err = app.LoadSettings(env(map[string]string{
		"SAGA_STEP_TIMEOUT": "7s", "SAGA_PAYMENT_TIMEOUT": "500ms", "SAGA_RETRIES": "0",
		"SAGA_MAX_TIMEOUT": "1m", "SAGA_STUCK_AFTER": "1h", "SAGA_SWEEP_INTERVAL": "100ms", "IDEMPOTENCY_KEY_TTL": "48h",
		"SAGA_EARLY_REPLY_WAIT": "5s",
	}))
	want := app.Settings{StepTimeout: 7e9, StepTimeouts: map[string]time.Duration{"payment": 5e8}, Retries: 0, MaxTimeout: 6e10,
		StuckAfter: 36e11, SweepInterval: 1e8, IdempotencyKeyTTL: 48 * 36e11, EarlyReplyWait: 5e9}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(app.Settings{}, "CardKeys")); err != nil || diff != "" {
		t.Errorf("%v; -want +got:\n%s", err, diff)
	}
	d := app.PlacementDefinition(got)
	for _, st := range d.Steps {
		wantTimeout := map[string]time.Duration{"credit-approval": 7e9, "payment": 5e8}[st.Name]
		if st.Deadline != (saga.Deadline{Timeout: wantTimeout, Retries: 0, MaxTimeout: 6e10}) {
			t.Errorf("step %s: deadline %+v, want a %v timeout, no retry, 1m at most", st.Name, st.Deadline, wantTimeout)
		}
	}
	_, err = app.LoadSettings(env(map[string]string{
		"SAGA_CREDIT_APPROVAL_TIMEOUT": "soon", "SAGA_PAYMENT_TIMEOUT": "-1s", "SAGA_RETRIES": "-1", "SAGA_STEP_TIMEOUT": "0s",
		"SAGA_MAX_TIMEOUT": "0", "SAGA_STUCK_AFTER": "x", "SAGA_SWEEP_INTERVAL": "1", "IDEMPOTENCY_KEY_TTL": "forever",
		"SAGA_EARLY_REPLY_WAIT": "-1s",
	}))
	for _, key := range []string{"SAGA_CREDIT_APPROVAL_TIMEOUT", "SAGA_PAYMENT_TIMEOUT", "SAGA_RETRIES", "SAGA_STEP_TIMEOUT", "SAGA_MAX_TIMEOUT", "SAGA_STUCK_AFTER", "SAGA_SWEEP_INTERVAL", "IDEMPOTENCY_KEY_TTL", "SAGA_EARLY_REPLY_WAIT"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error %v does not name %s", err, key)
		}
	}
}

// A saga whose deadline cannot be handled (here: its payload corrupted, so
// its request cannot be built) is reported and left past its deadline, and
// does not hold back the sagas due after it.
func TestSweepGoesOnPastASagaThatFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, pool := newApp(t)
	bad, good := place(t, a), place(t, a)
	_, err := pool.Exec(ctx, `UPDATE sagastate SET payload = '"not an object"', deadline = now() - interval '1 minute' WHERE id = $1`, bad.SagaID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, `UPDATE sagastate SET deadline = now() - interval '1 second' WHERE id = $1`, good.SagaID)
	if err != nil {
		t.Fatal(err)
	}
	n, err := a.Sagas().Sweep(ctx, pool)
	if n != 1 || err == nil || !strings.Contains(err.Error(), bad.SagaID.String()) {
		t.Fatalf("Sweep = %d, %v; want 1 saga acted on and an error naming saga %s", n, err, bad.SagaID)
	}
	if s := snapshot(t, pool, good).Saga; s.Attempt != 1 {
		t.Errorf("good saga at attempt %d, want 1", s.Attempt)
	}
	stuck, _, err := saga.List(ctx, pool, saga.Filter{Stuck: true, StuckAfter: app.DefaultSettings().StuckAfter})
	if err != nil || len(stuck) != 1 || stuck[0].ID != bad.SagaID || stuck[0].Version != 0 {
		t.Errorf("stuck = %+v (%v), want the failing saga, unchanged", stuck, err)
	}
}
