package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/contracts"
	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/services/order/internal/app"
	"github.com/sagabox/sagabox/services/order/internal/store"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const card = "1111-2222-3333-4444"

var validOrder = app.PlaceOrder{CustomerID: 456, ItemID: 1, Quantity: 1, PaymentDue: 4999, CreditCardNo: card}

func newApp(t *testing.T) (*app.App, *pgxpool.Pool) {
	t.Helper()
	pool := testenv.Pool(t, testenv.Database(t, migrations.Order()))
	return newAppWith(t, pool, app.DefaultSettings()), pool
}

func place(t *testing.T, a *app.App) store.Order {
	t.Helper()
	o, err := a.PlaceOrder(context.Background(), validOrder)
	if err != nil {
		t.Fatalf("PlaceOrder: %v", err)
	}
	return o
}

// querier is what the snapshot reads need: the pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// message is one outbox row with its payload decoded.
type message = testenv.OutboxEvent[requestPayload]

func outboxRows(t *testing.T, q querier) []message {
	t.Helper()
	return testenv.Outbox[requestPayload](t, q)
}

// state is everything the saga of order o may change.
type state struct {
	Order  store.Order
	Saga   saga.State
	Outbox []message
}

func snapshot(t *testing.T, q querier, o store.Order) state {
	t.Helper()
	ctx := context.Background()
	got, err := store.GetOrder(ctx, q, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	s, err := saga.Load(ctx, q, o.SagaID)
	if err != nil {
		t.Fatal(err)
	}
	return state{Order: got, Saga: s, Outbox: outboxRows(t, q)}
}

// want builds the outbox message of o's saga to step with type typ: only
// the payment request carries the sealed card.
func want(o store.Order, step, typ string) message {
	m := message{
		AggregateType: step, AggregateID: o.SagaID.String(), Type: typ,
		Payload: requestPayload{OrderID: o.ID, CustomerID: o.CustomerID, PaymentDue: o.PaymentDue, Type: typ},
	}
	if step == stepPayment && typ == "REQUEST" {
		m.Payload.CardSealed = o.CardSealed
	}
	return m
}

func replyMessage(step, key, status string) consumer.Message {
	return consumer.Message{
		Topic: step + ".response", Key: key, Value: fmt.Appendf(nil, `{"status":%q}`, status),
		ID: uuid.New(), EventType: "REPLY",
	}
}

// onReply applies m in its own transaction, as the consumer does: committed
// on success, rolled back on error.
func onReply(t *testing.T, pool *pgxpool.Pool, a *app.App, m consumer.Message) error {
	t.Helper()
	ctx := context.Background()
	var herr error
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		herr = a.Sagas().OnReply(ctx, tx, m)
		return herr
	})
	if herr == nil && err != nil {
		t.Fatalf("commit: %v", err)
	}
	return herr
}

func TestPlaceOrderStartsTheSaga(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t, testenv.Database(t, migrations.Order()))
	settings := app.DefaultSettings()
	_, settings.CardKeys = testenv.CardKeys(t)
	a := newAppWith(t, pool, settings)
	o := place(t, a)

	v, err := a.GetOrder(context.Background(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantOrder := store.Order{
		ID: o.ID, CustomerID: 456, ItemID: 1, Quantity: 1, PaymentDue: 4999, CardLast4: "4444",
		Status: store.StatusCreated, SagaID: o.SagaID,
	}
	if diff := cmp.Diff(wantOrder, v.Order, cmpopts.IgnoreFields(store.Order{}, "CardSealed", "CreatedAt", "UpdatedAt")); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	// The number is stored sealed for the saga, with the settings' key.
	if got, err := settings.CardKeys.Open(v.Order.CardSealed, []byte(o.SagaID.String())); err != nil || got != card {
		t.Errorf("stored card opens to %q, %v; want %q", got, err, card)
	}
	var p requestPayload
	if err := json.Unmarshal(v.Saga.Payload, &p); err != nil || p.CardSealed != v.Order.CardSealed {
		t.Errorf("saga payload %s (%v): want the order's sealed card", v.Saga.Payload, err)
	}
	wantSaga := saga.State{
		ID: o.SagaID, Type: app.PlacementSaga, DefinitionVersion: 1, CurrentStep: stepCredit,
		StepStatus: map[string]saga.StepStatus{stepCredit: saga.StepStarted},
		Waits:      map[string]saga.Wait{stepCredit: {Deadline: v.Saga.Deadline}},
		Status:     saga.StatusStarted, Version: 0,
	}
	if diff := cmp.Diff(wantSaga, v.Saga, cmpopts.IgnoreFields(saga.State{}, "Payload", "Deadline", "StatusSince", "CreatedAt", "UpdatedAt")); diff != "" {
		t.Errorf("saga (-want +got):\n%s", diff)
	}
	if got := v.Saga.Deadline.Sub(v.Saga.CreatedAt); got != 30*time.Second {
		t.Errorf("credit approval deadline %s after the start, want the default 30s", got)
	}
	wantOutbox := []message{want(o, stepCredit, "REQUEST")}
	if diff := cmp.Diff(wantOutbox, outboxRows(t, pool)); diff != "" {
		t.Errorf("outbox (-want +got):\n%s", diff)
	}
}

func TestPlaceOrderRefusesInvalidOrdersAndWritesNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(*app.PlaceOrder)
	}{
		{"quantity 0", func(p *app.PlaceOrder) { p.Quantity = 0 }},
		{"negative quantity", func(p *app.PlaceOrder) { p.Quantity = -1 }},
		{"paymentDue 0", func(p *app.PlaceOrder) { p.PaymentDue = 0 }},
		{"negative paymentDue", func(p *app.PlaceOrder) { p.PaymentDue = -4999 }},
		{"empty card", func(p *app.PlaceOrder) { p.CreditCardNo = "" }},
		{"blank card", func(p *app.PlaceOrder) { p.CreditCardNo = " \t" }},
		{"card over 64 characters", func(p *app.PlaceOrder) { p.CreditCardNo = strings.Repeat("1", 65) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, pool := newApp(t)
			p := validOrder
			tt.modify(&p)
			if _, err := a.PlaceOrder(context.Background(), p); !errors.Is(err, app.ErrInvalid) {
				t.Fatalf("PlaceOrder(%+v) = %v, want ErrInvalid", p, err)
			}
			var n [3]int
			err := pool.QueryRow(context.Background(), `SELECT
				(SELECT count(*) FROM purchaseorder), (SELECT count(*) FROM sagastate), (SELECT count(*) FROM outboxevent)`).
				Scan(&n[0], &n[1], &n[2])
			if err != nil {
				t.Fatal(err)
			}
			if n != [3]int{} {
				t.Errorf("rows in purchaseorder, sagastate, outboxevent = %v, want none", n)
			}
		})
	}
}

func TestOnReplyDrivesTheSaga(t *testing.T) {
	t.Parallel()
	credit, payment := stepCredit, stepPayment
	type step struct {
		step, status string
		wantSaga     saga.Status
		wantOrder    string
	}
	tests := []struct {
		name      string
		steps     []step
		wantSteps map[string]saga.StepStatus
		// wantOutbox lists (step, type) of the messages after PlaceOrder's
		// credit-approval REQUEST.
		wantOutbox [][2]string
	}{
		{
			name: "approved and paid: order accepted",
			steps: []step{
				{credit, "APPROVED", saga.StatusStarted, store.StatusCreated},
				{payment, "REQUESTED", saga.StatusSucceeded, store.StatusAccepted},
			},
			wantSteps:  map[string]saga.StepStatus{credit: saga.StepSucceeded, payment: saga.StepSucceeded},
			wantOutbox: [][2]string{{payment, "REQUEST"}},
		},
		{
			name: "payment failed: order rejected at once, credit compensated",
			steps: []step{
				{credit, "APPROVED", saga.StatusStarted, store.StatusCreated},
				{payment, "FAILED", saga.StatusAborting, store.StatusRejected},
				{credit, "CANCELLED", saga.StatusAborted, store.StatusRejected},
			},
			wantSteps:  map[string]saga.StepStatus{credit: saga.StepCompensated, payment: saga.StepFailed},
			wantOutbox: [][2]string{{payment, "REQUEST"}, {credit, "CANCEL"}},
		},
		{
			name: "credit rejected: order rejected, no payment requested",
			steps: []step{
				{credit, "REJECTED", saga.StatusAborted, store.StatusRejected},
			},
			wantSteps: map[string]saga.StepStatus{credit: saga.StepFailed},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			a, pool := newApp(t)
			o := place(t, a)
			for i, s := range tt.steps {
				if err := onReply(t, pool, a, replyMessage(s.step, o.SagaID.String(), s.status)); err != nil {
					t.Fatalf("reply %d (%s %s): %v", i, s.step, s.status, err)
				}
				v, err := a.GetOrder(ctx, o.ID)
				if err != nil {
					t.Fatal(err)
				}
				if v.Saga.Status != s.wantSaga || v.Order.Status != s.wantOrder || v.Saga.Version != i+1 {
					t.Errorf("after %s %s: saga %s version %d, order %s; want saga %s version %d, order %s",
						s.step, s.status, v.Saga.Status, v.Saga.Version, v.Order.Status, s.wantSaga, i+1, s.wantOrder)
				}
			}
			v, err := a.GetOrder(ctx, o.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantSteps, v.Saga.StepStatus); diff != "" {
				t.Errorf("step statuses (-want +got):\n%s", diff)
			}
			wantOutbox := []message{want(o, credit, "REQUEST")}
			for _, m := range tt.wantOutbox {
				wantOutbox = append(wantOutbox, want(o, m[0], m[1]))
			}
			if diff := cmp.Diff(wantOutbox, outboxRows(t, pool)); diff != "" {
				t.Errorf("outbox (-want +got):\n%s", diff)
			}
		})
	}
}

// badReplies are replies the order service can never apply, built for a
// saga id.
var badReplies = []struct {
	name string
	msg  func(sagaID string) consumer.Message
}{
	{"unknown status", func(id string) consumer.Message {
		return replyMessage(stepCredit, id, "WHAT")
	}},
	{"another step's status", func(id string) consumer.Message {
		return replyMessage(stepCredit, id, "REQUESTED")
	}},
	{"value not json", func(id string) consumer.Message {
		m := replyMessage(stepCredit, id, "APPROVED")
		m.Value = []byte(`{"status":`)
		return m
	}},
	{"key not a uuid", func(string) consumer.Message {
		return replyMessage(stepCredit, "order-1", "APPROVED")
	}},
	{"request topic", func(id string) consumer.Message {
		m := replyMessage(stepCredit, id, "APPROVED")
		m.Topic = "credit-approval.request"
		return m
	}},
	{"reply of an unknown step", func(id string) consumer.Message {
		return replyMessage("shipping", id, "APPROVED")
	}},
}

func TestOnReplyRefusesBadRepliesPermanently(t *testing.T) {
	t.Parallel()
	for _, tt := range badReplies {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			a, pool := newApp(t)
			o := place(t, a)
			before := snapshot(t, pool, o)
			m := tt.msg(o.SagaID.String())
			var herr error
			_ = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				herr = a.Sagas().OnReply(ctx, tx, m)
				// Nothing written even if the caller committed regardless.
				if diff := cmp.Diff(before, snapshot(t, tx, o)); diff != "" {
					t.Errorf("state in the handler's tx (-before +after):\n%s", diff)
				}
				return herr
			})
			if !errors.Is(herr, consumer.ErrPermanent) {
				t.Fatalf("OnReply(%s %s %s) = %v, want a permanent error", m.Topic, m.Key, m.Value, herr)
			}
			if diff := cmp.Diff(before, snapshot(t, pool, o)); diff != "" {
				t.Errorf("state (-before +after):\n%s", diff)
			}
		})
	}
}

// A redelivered or late reply is not an error (the consumer would park it)
// and changes nothing: the saga has moved on.
func TestOnReplyIgnoresLateReplies(t *testing.T) {
	t.Parallel()
	credit, payment := stepCredit, stepPayment
	tests := []struct {
		name  string
		setup [][2]string // (step, status) replies applied first
		late  [2]string
	}{
		{"credit approved again while paying", [][2]string{{credit, "APPROVED"}}, [2]string{credit, "APPROVED"}},
		{"credit rejected after approval", [][2]string{{credit, "APPROVED"}}, [2]string{credit, "REJECTED"}},
		{"payment reply after success", [][2]string{{credit, "APPROVED"}, {payment, "REQUESTED"}}, [2]string{payment, "REQUESTED"}},
		{"payment failure after success", [][2]string{{credit, "APPROVED"}, {payment, "REQUESTED"}}, [2]string{payment, "FAILED"}},
		{"credit approved after rejection", [][2]string{{credit, "REJECTED"}}, [2]string{credit, "APPROVED"}},
		{"payment failed again while compensating", [][2]string{{credit, "APPROVED"}, {payment, "FAILED"}}, [2]string{payment, "FAILED"}},
		{"credit cancelled again after abort", [][2]string{{credit, "APPROVED"}, {payment, "FAILED"}, {credit, "CANCELLED"}}, [2]string{credit, "CANCELLED"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, pool := newApp(t)
			o := place(t, a)
			for _, r := range tt.setup {
				if err := onReply(t, pool, a, replyMessage(r[0], o.SagaID.String(), r[1])); err != nil {
					t.Fatalf("setup reply %s %s: %v", r[0], r[1], err)
				}
			}
			before := snapshot(t, pool, o)
			if err := onReply(t, pool, a, replyMessage(tt.late[0], o.SagaID.String(), tt.late[1])); err != nil {
				t.Fatalf("late reply %s %s: %v, want nil", tt.late[0], tt.late[1], err)
			}
			if diff := cmp.Diff(before, snapshot(t, pool, o)); diff != "" {
				t.Errorf("state (-before +after):\n%s", diff)
			}
		})
	}
}

// A reply ahead of the saga as the order service sees it — for a saga not
// visible yet, for a step whose request the state does not show as sent, a
// compensation confirmed before the state shows it asked — is Early: the
// transaction that sent what it answers committed elsewhere but is not
// visible yet. Nothing changes; the consumer tries it again shortly.
func TestOnReplyEarlyRepliesAreWaitedFor(t *testing.T) {
	t.Parallel()
	credit, payment := stepCredit, stepPayment
	tests := []struct {
		name  string
		setup [][2]string // (step, status) replies applied first
		early [2]string
		saga  func(o store.Order) string // the reply's key; nil: the order's saga
	}{
		{"reply for a saga not visible yet", nil, [2]string{credit, "APPROVED"}, func(store.Order) string { return uuid.NewString() }},
		{"payment reply before payment was requested", nil, [2]string{payment, "REQUESTED"}, nil},
		{"payment failure before payment was requested", nil, [2]string{payment, "FAILED"}, nil},
		{"credit cancelled before the failure that cancels it", [][2]string{{credit, "APPROVED"}}, [2]string{credit, "CANCELLED"}, nil},
		{"credit cancelled while it is still awaited", nil, [2]string{credit, "CANCELLED"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, pool := newApp(t)
			o := place(t, a)
			for _, r := range tt.setup {
				if err := onReply(t, pool, a, replyMessage(r[0], o.SagaID.String(), r[1])); err != nil {
					t.Fatalf("setup reply %s %s: %v", r[0], r[1], err)
				}
			}
			key := o.SagaID.String()
			if tt.saga != nil {
				key = tt.saga(o)
			}
			before := snapshot(t, pool, o)
			err := onReply(t, pool, a, replyMessage(tt.early[0], key, tt.early[1]))
			if !errors.Is(err, consumer.ErrEarly) || errors.Is(err, consumer.ErrPermanent) {
				t.Fatalf("early reply %s %s: %v, want an Early error", tt.early[0], tt.early[1], err)
			}
			if diff := cmp.Diff(before, snapshot(t, pool, o)); diff != "" {
				t.Errorf("state (-before +after):\n%s", diff)
			}
		})
	}
}

// Two transactions apply the credit approval of one saga at the same time
// (a redelivery racing the original, different message ids, so the journal
// does not deduplicate them). The interleaving is forced: A updates the saga
// row and holds its lock; B reads the same version and blocks on its update;
// A commits. B must lose the optimistic lock with a retryable error, and its
// retry must find the reply already applied.
func TestOnReplyConcurrentRepliesLoseTheOptimisticLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, pool := newApp(t)
	o := place(t, a)
	msgA := replyMessage(stepCredit, o.SagaID.String(), "APPROVED")
	msgB := replyMessage(stepCredit, o.SagaID.String(), "APPROVED")

	txA, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer txA.Rollback(ctx)
	if err := a.Sagas().OnReply(ctx, txA, msgA); err != nil {
		t.Fatalf("OnReply in tx A: %v", err)
	}

	txB, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer txB.Rollback(ctx)
	pidB := txB.Conn().PgConn().PID()
	done := make(chan struct{})
	var errB error
	go func() {
		defer close(done)
		errB = a.Sagas().OnReply(ctx, txB, msgB)
	}()
	// On a failure below, end A so that B returns before txB is rolled back.
	defer func() {
		_ = txA.Rollback(ctx)
		<-done
	}()

	testenv.AwaitLockWait(t, pool, pidB, "tx B")

	if err := txA.Commit(ctx); err != nil {
		t.Fatalf("commit tx A: %v", err)
	}
	<-done
	if errors.Is(errB, consumer.ErrPermanent) {
		t.Errorf("OnReply in tx B = %v: permanent, want a retryable error", errB)
	}
	if !errors.Is(errB, saga.ErrStale) {
		t.Fatalf("OnReply in tx B = %v, want saga.ErrStale", errB)
	}
	if err := txB.Rollback(ctx); err != nil {
		t.Fatalf("roll back tx B: %v", err)
	}
	after := snapshot(t, pool, o)

	// The consumer's retry of B, in a fresh transaction.
	if err := onReply(t, pool, a, msgB); err != nil {
		t.Fatalf("retry of B: %v, want nil", err)
	}
	got := snapshot(t, pool, o)
	if diff := cmp.Diff(after, got); diff != "" {
		t.Errorf("retry of B changed the state (-before +after):\n%s", diff)
	}
	if got.Saga.Version != 1 || got.Saga.StepStatus[stepCredit] != saga.StepSucceeded {
		t.Errorf("saga version %d, credit step %s; want version 1, SUCCEEDED", got.Saga.Version, got.Saga.StepStatus[stepCredit])
	}
	wantOutbox := []message{
		want(o, stepCredit, "REQUEST"),
		want(o, stepPayment, "REQUEST"), // exactly one payment request
	}
	if diff := cmp.Diff(wantOutbox, got.Outbox); diff != "" {
		t.Errorf("outbox (-want +got):\n%s", diff)
	}
}

// The steps of the order-placement saga, by their contracts.
var (
	stepCredit  = contracts.CreditApproval().Name
	stepPayment = contracts.Payment().Name
)

// requestPayload is a request of the order-placement saga as its outbox row
// holds it.
type requestPayload struct {
	OrderID    int64  `json:"order-id"`
	CustomerID int64  `json:"customer-id"`
	PaymentDue int64  `json:"payment-due"`
	CardSealed string `json:"credit-card-sealed,omitempty"`
	Type       string `json:"type"`
}
