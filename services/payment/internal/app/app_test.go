package app_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/services/payment/internal/app"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	goodCard    = "1111-2222-3333-4444"
	refusedCard = "5555-6666-7777-9999"
)

// querier is what the snapshot reads need: the pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

type payment struct {
	SagaID     uuid.UUID
	OrderID    int64
	CustomerID int64
	Amount     int64
	CardLast4  string
	Status     string
}

type reply = testenv.OutboxEvent[map[string]string]

// state is everything the handler may change.
type state struct {
	Payments []payment
	Replies  []reply
}

func snapshot(t *testing.T, q querier) state {
	t.Helper()
	ctx := context.Background()
	var s state
	rows, err := q.Query(ctx, `SELECT saga_id, order_id, customer_id, amount, card_last4, status FROM payment ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	s.Payments, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (payment, error) {
		var p payment
		err := r.Scan(&p.SagaID, &p.OrderID, &p.CustomerID, &p.Amount, &p.CardLast4, &p.Status)
		return p, err
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Replies = testenv.Outbox[map[string]string](t, q)
	return s
}

func newDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	return testenv.Pool(t, testenv.Database(t, migrations.Payment()))
}

func requestPayload(typ, card string, due int64) []byte {
	return fmt.Appendf(nil, `{"order-id":1,"customer-id":456,"payment-due":%d,"credit-card-no":%q,"type":%q}`,
		due, card, typ)
}

// handle runs the handler on one message in its own transaction, as the
// consumer does: committed on success, rolled back on error.
func handle(t *testing.T, pool *pgxpool.Pool, h consumer.Handler, key string, value []byte) error {
	t.Helper()
	ctx := context.Background()
	var herr error
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		herr = h(ctx, tx, consumer.Message{Topic: app.RequestTopic, Key: key, Value: value, ID: uuid.New()})
		return herr
	})
	if herr == nil && err != nil {
		t.Fatalf("commit: %v", err)
	}
	return herr
}

func paymentReply(sagaID uuid.UUID, status string) reply {
	return reply{
		AggregateType: "payment", AggregateID: sagaID.String(), Type: "PaymentUpdated",
		Payload: map[string]string{"status": status},
	}
}

func TestOnPaymentRequest(t *testing.T) {
	t.Parallel()
	type step struct {
		typ  string
		card string
		want string // reply status
	}
	tests := []struct {
		name  string
		steps []step
		want  []payment // SagaID filled in by the test
	}{
		{
			name:  "card ending 9999 is refused",
			steps: []step{{"REQUEST", refusedCard, "FAILED"}},
			want:  []payment{{CardLast4: "9999", Status: "FAILED"}},
		},
		{
			name:  "other card is charged",
			steps: []step{{"REQUEST", goodCard, "REQUESTED"}},
			want:  []payment{{CardLast4: "4444", Status: "COMPLETED"}},
		},
		{
			name:  "repeated request gets the first answer and pays once",
			steps: []step{{"REQUEST", goodCard, "REQUESTED"}, {"REQUEST", goodCard, "REQUESTED"}},
			want:  []payment{{CardLast4: "4444", Status: "COMPLETED"}},
		},
		{
			name:  "repeated refused request stays refused",
			steps: []step{{"REQUEST", refusedCard, "FAILED"}, {"REQUEST", refusedCard, "FAILED"}},
			want:  []payment{{CardLast4: "9999", Status: "FAILED"}},
		},
		{
			name:  "cancel refunds",
			steps: []step{{"REQUEST", goodCard, "REQUESTED"}, {"CANCEL", goodCard, "CANCELLED"}},
			want:  []payment{{CardLast4: "4444", Status: "REFUNDED"}},
		},
		{
			name: "second cancel refunds nothing more",
			steps: []step{
				{"REQUEST", goodCard, "REQUESTED"},
				{"CANCEL", goodCard, "CANCELLED"},
				{"CANCEL", goodCard, "CANCELLED"},
			},
			want: []payment{{CardLast4: "4444", Status: "REFUNDED"}},
		},
		{
			name:  "cancel before any request leaves a marker, charges and refunds nothing",
			steps: []step{{"CANCEL", goodCard, "CANCELLED"}},
			want:  []payment{{CardLast4: "4444", Status: "CANCELLED", Amount: 0}},
		},
		{
			name: "request after a cancel that came first is refused and charges nothing",
			steps: []step{
				{"CANCEL", goodCard, "CANCELLED"},
				{"REQUEST", goodCard, "FAILED"},
				{"CANCEL", goodCard, "CANCELLED"},
				{"REQUEST", goodCard, "FAILED"},
			},
			want: []payment{{CardLast4: "4444", Status: "CANCELLED", Amount: 0}},
		},
		{
			name: "request again after its refund is refused and charges nothing",
			steps: []step{
				{"REQUEST", goodCard, "REQUESTED"},
				{"CANCEL", goodCard, "CANCELLED"},
				{"REQUEST", goodCard, "FAILED"},
			},
			want: []payment{{CardLast4: "4444", Status: "REFUNDED"}},
		},
		{
			name:  "cancel of a refused payment leaves it failed",
			steps: []step{{"REQUEST", refusedCard, "FAILED"}, {"CANCEL", refusedCard, "CANCELLED"}},
			want:  []payment{{CardLast4: "9999", Status: "FAILED"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool := newDB(t)
			h := app.New(slog.New(slog.DiscardHandler)).OnPaymentRequest
			sagaID := uuid.New()

			want := state{}
			for i, s := range tt.steps {
				if err := handle(t, pool, h, sagaID.String(), requestPayload(s.typ, s.card, 4999)); err != nil {
					t.Fatalf("step %d (%s): %v", i, s.typ, err)
				}
				want.Replies = append(want.Replies, paymentReply(sagaID, s.want))
			}
			for _, p := range tt.want {
				p.SagaID, p.OrderID, p.CustomerID = sagaID, 1, 456
				if p.Status != "CANCELLED" {
					p.Amount = 4999
				}
				want.Payments = append(want.Payments, p)
			}
			if diff := cmp.Diff(want, snapshot(t, pool), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
		})
	}
}

// A REQUEST and a CANCEL of one saga are handled at the same time, in
// either order: the second waits for the first one's row, then sees its
// outcome. The interleaving is forced through pg_stat_activity.
func TestOnPaymentRequestConcurrentRequestAndCancel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		first, second       string
		wantFirst, wantNext string // reply statuses
		want                payment
	}{
		{"REQUEST", "CANCEL", "REQUESTED", "CANCELLED", payment{Amount: 4999, CardLast4: "4444", Status: "REFUNDED"}},
		{"CANCEL", "REQUEST", "CANCELLED", "FAILED", payment{Amount: 0, CardLast4: "4444", Status: "CANCELLED"}},
	}
	for _, tt := range tests {
		t.Run(tt.first+" then "+tt.second, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool := newDB(t)
			h := app.New(slog.New(slog.DiscardHandler)).OnPaymentRequest
			sagaID := uuid.New()
			msg := func(typ string) consumer.Message {
				return consumer.Message{Topic: app.RequestTopic, Key: sagaID.String(), Value: requestPayload(typ, goodCard, 4999), ID: uuid.New()}
			}
			txA, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer txA.Rollback(ctx)
			if err := h(ctx, txA, msg(tt.first)); err != nil {
				t.Fatalf("%s in tx A: %v", tt.first, err)
			}
			txB, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer txB.Rollback(ctx)
			pidB := txB.Conn().PgConn().PID()
			done := make(chan error, 1)
			go func() { done <- h(ctx, txB, msg(tt.second)) }()
			testenv.Eventually(t, 10*time.Second, func() bool {
				var wait *string
				err := pool.QueryRow(ctx, `SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1`, pidB).Scan(&wait)
				return err == nil && wait != nil && *wait == "Lock"
			}, "tx B (pid %d) never waited for the payment row", pidB)
			if err := txA.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("%s in tx B: %v", tt.second, err)
			}
			if err := txB.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			tt.want.SagaID, tt.want.OrderID, tt.want.CustomerID = sagaID, 1, 456
			want := state{
				Payments: []payment{tt.want},
				Replies:  []reply{paymentReply(sagaID, tt.wantFirst), paymentReply(sagaID, tt.wantNext)},
			}
			if diff := cmp.Diff(want, snapshot(t, pool), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
		})
	}
}

// The card number is personal data the payment service must not keep: it
// appears in no column of any row it writes, only its last four digits do.
func TestOnPaymentRequestNeverStoresTheCardNumber(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	h := app.New(slog.New(slog.DiscardHandler)).OnPaymentRequest
	const card = "4000-1234-5678-4321"
	sagaID := uuid.New()
	for _, typ := range []string{"REQUEST", "CANCEL"} {
		if err := handle(t, pool, h, sagaID.String(), requestPayload(typ, card, 4999)); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
	}
	var last4 string
	if err := pool.QueryRow(context.Background(), `SELECT card_last4 FROM payment WHERE saga_id = $1`, sagaID).Scan(&last4); err != nil {
		t.Fatal(err)
	}
	if last4 != "4321" {
		t.Errorf("card_last4 = %q, want %q", last4, "4321")
	}
	// Neither the number nor its first twelve digits are anywhere (shorter
	// fragments could match a uuid or a timestamp by chance).
	for _, fragment := range []string{card, "4000-1234-5678"} {
		var n int
		err := pool.QueryRow(context.Background(), `SELECT
			(SELECT count(*) FROM payment p WHERE p::text LIKE '%' || $1 || '%') +
			(SELECT count(*) FROM outboxevent o WHERE o::text LIKE '%' || $1 || '%')`, fragment).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d rows contain %q of the card number", n, fragment)
		}
	}
}

func TestOnPaymentRequestRefusesBadMessagesPermanently(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		key   string
		value []byte
	}{
		{"zero payment-due", uuid.NewString(), requestPayload("REQUEST", goodCard, 0)},
		{"negative payment-due", uuid.NewString(), requestPayload("REQUEST", goodCard, -4999)},
		{"missing payment-due", uuid.NewString(), []byte(`{"order-id":1,"customer-id":456,"credit-card-no":"x","type":"REQUEST"}`)},
		{"key not a uuid", "order-1", requestPayload("REQUEST", goodCard, 4999)},
		{"empty key", "", requestPayload("CANCEL", goodCard, 4999)},
		{"payload not json", uuid.NewString(), []byte(`{"type":"REQUEST",`)},
		{"payload of the wrong shape", uuid.NewString(), []byte(`{"payment-due":"lots","type":"REQUEST"}`)},
		{"unknown type", uuid.NewString(), requestPayload("REFUND", goodCard, 4999)},
		{"missing type", uuid.NewString(), []byte(`{"order-id":1,"customer-id":456,"payment-due":4999,"credit-card-no":"x"}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool := newDB(t)
			h := app.New(slog.New(slog.DiscardHandler)).OnPaymentRequest
			ctx := context.Background()
			var herr error
			_ = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				herr = h(ctx, tx, consumer.Message{Topic: app.RequestTopic, Key: tt.key, Value: tt.value, ID: uuid.New()})
				// Nothing written even if the caller committed regardless.
				if diff := cmp.Diff(state{}, snapshot(t, tx), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("state in the handler's tx (-want +got):\n%s", diff)
				}
				return herr
			})
			if !errors.Is(herr, consumer.ErrPermanent) {
				t.Fatalf("OnPaymentRequest = %v, want a permanent error", herr)
			}
			if diff := cmp.Diff(state{}, snapshot(t, pool), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
		})
	}
}
