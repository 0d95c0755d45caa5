package app_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/card"
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

// fixture is a payment database, the card keys the service opens with and
// its handler.
type fixture struct {
	t    *testing.T
	pool *pgxpool.Pool
	keys card.Keys
	h    consumer.Handler
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	_, keys := testenv.CardKeys(t)
	return &fixture{
		t: t, pool: testenv.Pool(t, testenv.Database(t, migrations.Payment())), keys: keys,
		h: app.New(slog.New(slog.DiscardHandler), keys).OnPaymentRequest,
	}
}

// payload is a message of saga sagaID as the order service writes it: a
// REQUEST carries number sealed for the saga, a CANCEL no card.
func (f *fixture) payload(sagaID uuid.UUID, typ, number string, due int64) []byte {
	f.t.Helper()
	sealed := ""
	if typ == app.TypeRequest {
		var err error
		if sealed, err = f.keys.Seal(number, []byte(sagaID.String())); err != nil {
			f.t.Fatal(err)
		}
	}
	return requestPayload(typ, sealed, due)
}

func requestPayload(typ, sealed string, due int64) []byte {
	return fmt.Appendf(nil, `{"order-id":1,"customer-id":456,"payment-due":%d,"credit-card-sealed":%q,"type":%q}`,
		due, sealed, typ)
}

func message(key string, value []byte) consumer.Message {
	return consumer.Message{Topic: app.RequestTopic, Key: key, Value: value, ID: uuid.New()}
}

// handle runs the handler on one message in its own transaction, as the
// consumer does: committed on success, rolled back on error.
func (f *fixture) handle(key string, value []byte) error {
	f.t.Helper()
	ctx := context.Background()
	var herr error
	err := pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		herr = f.h(ctx, tx, message(key, value))
		return herr
	})
	if herr == nil && err != nil {
		f.t.Fatalf("commit: %v", err)
	}
	return herr
}

// refused runs the handler on m in a transaction that it rolls back, and
// checks that it failed permanently and wrote nothing, even within its own
// transaction.
func (f *fixture) refused(m consumer.Message) error {
	f.t.Helper()
	ctx := context.Background()
	var herr error
	_ = pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		herr = f.h(ctx, tx, m)
		if diff := cmp.Diff(state{}, snapshot(f.t, tx), cmpopts.EquateEmpty()); diff != "" {
			f.t.Errorf("state in the handler's tx (-want +got):\n%s", diff)
		}
		return herr
	})
	if !errors.Is(herr, consumer.ErrPermanent) {
		f.t.Fatalf("OnPaymentRequest = %v, want a permanent error", herr)
	}
	if diff := cmp.Diff(state{}, snapshot(f.t, f.pool), cmpopts.EquateEmpty()); diff != "" {
		f.t.Errorf("state (-want +got):\n%s", diff)
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
			want:  []payment{{CardLast4: "", Status: "CANCELLED", Amount: 0}}, // a CANCEL has no card
		},
		{
			name: "request after a cancel that came first is refused and charges nothing",
			steps: []step{
				{"CANCEL", goodCard, "CANCELLED"},
				{"REQUEST", goodCard, "FAILED"},
				{"CANCEL", goodCard, "CANCELLED"},
				{"REQUEST", goodCard, "FAILED"},
			},
			want: []payment{{CardLast4: "", Status: "CANCELLED", Amount: 0}},
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
			f := newFixture(t)
			sagaID := uuid.New()

			want := state{}
			for i, s := range tt.steps {
				if err := f.handle(sagaID.String(), f.payload(sagaID, s.typ, s.card, 4999)); err != nil {
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
			if diff := cmp.Diff(want, snapshot(t, f.pool), cmpopts.EquateEmpty()); diff != "" {
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
		{"CANCEL", "REQUEST", "CANCELLED", "FAILED", payment{Amount: 0, CardLast4: "", Status: "CANCELLED"}},
	}
	for _, tt := range tests {
		t.Run(tt.first+" then "+tt.second, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFixture(t)
			pool, h := f.pool, f.h
			sagaID := uuid.New()
			msg := func(typ string) consumer.Message {
				return message(sagaID.String(), f.payload(sagaID, typ, goodCard, 4999))
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
			testenv.AwaitLockWait(t, pool, pidB, "tx B")
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
// appears in no column of any row it writes, nor in its log; only its last
// four digits do.
func TestOnPaymentRequestNeverStoresNorLogsTheCardNumber(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var logs bytes.Buffer
	f.h = app.New(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), f.keys).OnPaymentRequest
	const card = "4000-1234-5678-4321"
	sagaID := uuid.New()
	for _, typ := range []string{"REQUEST", "REQUEST", "CANCEL"} {
		if err := f.handle(sagaID.String(), f.payload(sagaID, typ, card, 4999)); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
	}
	var last4 string
	if err := f.pool.QueryRow(context.Background(), `SELECT card_last4 FROM payment WHERE saga_id = $1`, sagaID).Scan(&last4); err != nil {
		t.Fatal(err)
	}
	if last4 != "4321" {
		t.Errorf("card_last4 = %q, want %q", last4, "4321")
	}
	if logs.Len() == 0 {
		t.Fatal("the handler logged nothing: the log check below would prove nothing")
	}
	// Neither the number nor its first twelve digits are anywhere (shorter
	// fragments could match a uuid or a timestamp by chance).
	for _, fragment := range []string{card, "4000-1234-5678", "400012345678"} {
		var n int
		err := f.pool.QueryRow(context.Background(), `SELECT
			(SELECT count(*) FROM payment p WHERE p::text LIKE '%' || $1 || '%') +
			(SELECT count(*) FROM outboxevent o WHERE o::text LIKE '%' || $1 || '%')`, fragment).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d rows contain %q of the card number", n, fragment)
		}
		if strings.Contains(logs.String(), fragment) {
			t.Errorf("the log contains %q of the card number:\n%s", fragment, logs.String())
		}
	}
}

// badMessages are messages the payment service can never apply.
var badMessages = []struct {
	name  string
	key   string
	value []byte
}{
	{"zero payment-due", uuid.NewString(), requestPayload("REQUEST", "v1.test.x", 0)},
	{"negative payment-due", uuid.NewString(), requestPayload("REQUEST", "v1.test.x", -4999)},
	{"missing payment-due", uuid.NewString(), []byte(`{"order-id":1,"customer-id":456,"credit-card-sealed":"v1.test.x","type":"REQUEST"}`)},
	{"key not a uuid", "order-1", requestPayload("REQUEST", "v1.test.x", 4999)},
	{"empty key", "", requestPayload("CANCEL", "", 4999)},
	{"payload not json", uuid.NewString(), []byte(`{"type":"REQUEST",`)},
	{"payload of the wrong shape", uuid.NewString(), []byte(`{"payment-due":"lots","type":"REQUEST"}`)},
	{"unknown type", uuid.NewString(), requestPayload("REFUND", "", 4999)},
	{"missing type", uuid.NewString(), []byte(`{"order-id":1,"customer-id":456,"payment-due":4999}`)},
	{"request without a card", uuid.NewString(), requestPayload("REQUEST", "", 4999)},
	{"request with a card in clear", uuid.NewString(), []byte(`{"order-id":1,"customer-id":456,"payment-due":4999,"credit-card-no":"4111111111111111","type":"REQUEST"}`)},
	{"card not an envelope", uuid.NewString(), requestPayload("REQUEST", "4111111111111111", 4999)},
}

func TestOnPaymentRequestRefusesBadMessagesPermanently(t *testing.T) {
	t.Parallel()
	for _, tt := range badMessages {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.refused(message(tt.key, tt.value))
		})
	}
}

// A sealed card the service cannot open — sealed with a key it does not
// have, sealed for another saga, or tampered with — parks the message (a
// permanent error that names the problem, never the card) and charges
// nothing; the partition goes on.
func TestOnPaymentRequestRefusesUnreadableCards(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	sagaID, other := uuid.New(), uuid.New()
	_, stranger := testenv.CardKeys(t, "other")
	sealed := func(keys card.Keys, context uuid.UUID) string {
		s, err := keys.Seal(goodCard, []byte(context.String()))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	mine := sealed(f.keys, sagaID)
	flipped := []byte(mine)
	flipped[len(flipped)-5] ^= 1
	if flipped[len(flipped)-5] == '.' || flipped[len(flipped)-5] == '/' {
		flipped[len(flipped)-5] = 'A'
	}
	for name, tc := range map[string]struct{ sealed, want string }{
		"a key the service lacks": {sealed(stranger, sagaID), `key "other", which is not configured`},
		"sealed for another saga": {sealed(f.keys, other), "does not authenticate"},
		"tampered with":           {string(flipped), "sealed card number unreadable"},
		"relabelled":              {strings.Replace(mine, "v1.test.", "v1.other.", 1), "not configured"},
	} {
		t.Run(name, func(t *testing.T) {
			err := f.refused(message(sagaID.String(), requestPayload("REQUEST", tc.sealed, 4999)))
			if !errors.Is(err, card.ErrUnreadable) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v: want card.ErrUnreadable saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), goodCard) || strings.Contains(err.Error(), tc.sealed[len(tc.sealed)-20:]) {
				t.Errorf("error quotes the card: %v", err)
			}
		})
	}
}
