package app_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/services/customer/internal/app"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// seededLimit is the open limit migrations give customer 456.
const seededLimit = 50000

// querier is what the snapshot reads need: the pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

type allocation struct {
	SagaID     uuid.UUID
	CustomerID int64
	OrderID    int64
	Amount     int64
	Status     string
}

type reply = testenv.OutboxEvent[map[string]string]

// state is everything the handler may change.
type state struct {
	OpenLimits  map[int64]int64
	Allocations []allocation
	Replies     []reply
}

func snapshot(t *testing.T, q querier) state {
	t.Helper()
	ctx := context.Background()
	var s state
	rows, err := q.Query(ctx, `SELECT id, open_limit FROM customer ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	s.OpenLimits = map[int64]int64{}
	for rows.Next() {
		var id, limit int64
		if err := rows.Scan(&id, &limit); err != nil {
			t.Fatal(err)
		}
		s.OpenLimits[id] = limit
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err = q.Query(ctx, `SELECT saga_id, customer_id, order_id, amount, status FROM credit_allocation ORDER BY created_at, saga_id`)
	if err != nil {
		t.Fatal(err)
	}
	s.Allocations, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (allocation, error) {
		var a allocation
		err := r.Scan(&a.SagaID, &a.CustomerID, &a.OrderID, &a.Amount, &a.Status)
		return a, err
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Replies = testenv.Outbox[map[string]string](t, q)
	return s
}

func newDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	return testenv.Pool(t, testenv.Database(t, migrations.Customer()))
}

func requestPayload(typ string, customerID, due int64) []byte {
	return fmt.Appendf(nil, `{"order-id":1,"customer-id":%d,"payment-due":%d,"type":%q}`,
		customerID, due, typ)
}

// handle runs the handler on one message in its own transaction, as the
// consumer does: committed on success, rolled back on error.
func handle(t *testing.T, pool *pgxpool.Pool, h consumer.Handler, key string, value []byte) error {
	t.Helper()
	ctx := context.Background()
	var herr error
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		herr = h(ctx, tx, consumer.Message{
			Topic: app.RequestTopic, Key: key, Value: value, ID: uuid.New(), EventType: "REQUEST",
		})
		return herr
	})
	if herr == nil && err != nil {
		t.Fatalf("commit: %v", err)
	}
	return herr
}

func creditReply(sagaID uuid.UUID, status string) reply {
	return reply{
		AggregateType: "credit-approval", AggregateID: sagaID.String(), Type: "CreditUpdated",
		Payload: map[string]string{"status": status},
	}
}

func TestOnCreditRequest(t *testing.T) {
	t.Parallel()
	// Sagas are named by index into the test's saga ids.
	type step struct {
		saga       int
		typ        string
		customerID int64
		due        int64
		want       string // reply status
	}
	type alloc struct {
		saga     int
		customer int64
		amount   int64
		status   string
	}
	tests := []struct {
		name      string
		steps     []step
		wantLimit int64 // customer 456
		wantAlloc []alloc
	}{
		{
			name:      "request within limit is approved and allocated",
			steps:     []step{{0, "REQUEST", 456, 4999, "APPROVED"}},
			wantLimit: seededLimit - 4999,
			wantAlloc: []alloc{{0, 456, 4999, "ALLOCATED"}},
		},
		{
			name:      "request of exactly the open limit is approved",
			steps:     []step{{0, "REQUEST", 456, seededLimit, "APPROVED"}},
			wantLimit: 0,
			wantAlloc: []alloc{{0, 456, seededLimit, "ALLOCATED"}},
		},
		{
			name:      "request over the limit is rejected and takes nothing",
			steps:     []step{{0, "REQUEST", 456, seededLimit + 1, "REJECTED"}},
			wantLimit: seededLimit,
			wantAlloc: []alloc{{0, 456, 0, "REJECTED"}},
		},
		{
			name:      "unknown customer is rejected",
			steps:     []step{{0, "REQUEST", 999, 4999, "REJECTED"}},
			wantLimit: seededLimit,
			wantAlloc: []alloc{{0, 999, 0, "REJECTED"}},
		},
		{
			name:      "zero amount is rejected",
			steps:     []step{{0, "REQUEST", 456, 0, "REJECTED"}},
			wantLimit: seededLimit,
			wantAlloc: []alloc{{0, 456, 0, "REJECTED"}},
		},
		{
			name: "repeated request gets the first answer and allocates once",
			steps: []step{
				{0, "REQUEST", 456, 4999, "APPROVED"},
				{0, "REQUEST", 456, 4999, "APPROVED"},
			},
			wantLimit: seededLimit - 4999,
			wantAlloc: []alloc{{0, 456, 4999, "ALLOCATED"}},
		},
		{
			name: "second saga is rejected by what the first allocated",
			steps: []step{
				{0, "REQUEST", 456, 30000, "APPROVED"},
				{1, "REQUEST", 456, 30000, "REJECTED"},
			},
			wantLimit: seededLimit - 30000,
			wantAlloc: []alloc{{0, 456, 30000, "ALLOCATED"}, {1, 456, 0, "REJECTED"}},
		},
		{
			name: "repeated rejected request stays rejected after the limit came back",
			steps: []step{
				{0, "REQUEST", 456, 30000, "APPROVED"},
				{1, "REQUEST", 456, 30000, "REJECTED"},
				{0, "CANCEL", 456, 30000, "CANCELLED"},
				{1, "REQUEST", 456, 30000, "REJECTED"},
			},
			wantLimit: seededLimit,
			wantAlloc: []alloc{{0, 456, 30000, "RELEASED"}, {1, 456, 0, "REJECTED"}},
		},
		{
			name: "cancel releases the allocation",
			steps: []step{
				{0, "REQUEST", 456, 4999, "APPROVED"},
				{0, "CANCEL", 456, 4999, "CANCELLED"},
			},
			wantLimit: seededLimit,
			wantAlloc: []alloc{{0, 456, 4999, "RELEASED"}},
		},
		{
			name: "second cancel releases nothing",
			steps: []step{
				{0, "REQUEST", 456, 4999, "APPROVED"},
				{0, "CANCEL", 456, 4999, "CANCELLED"},
				{0, "CANCEL", 456, 4999, "CANCELLED"},
			},
			wantLimit: seededLimit,
			wantAlloc: []alloc{{0, 456, 4999, "RELEASED"}},
		},
		{
			name: "request again after its cancel is refused and takes nothing",
			steps: []step{
				{0, "REQUEST", 456, 4999, "APPROVED"},
				{0, "CANCEL", 456, 4999, "CANCELLED"},
				{0, "REQUEST", 456, 4999, "REJECTED"},
			},
			wantLimit: seededLimit,
			wantAlloc: []alloc{{0, 456, 4999, "RELEASED"}},
		},
		{
			name:      "cancel before any request leaves a marker and releases nothing",
			steps:     []step{{0, "CANCEL", 456, 4999, "CANCELLED"}},
			wantLimit: seededLimit,
			wantAlloc: []alloc{{0, 456, 0, "CANCELLED"}},
		},
		{
			name: "request after a cancel that came first is refused and takes nothing",
			steps: []step{
				{0, "CANCEL", 456, 4999, "CANCELLED"},
				{0, "REQUEST", 456, 4999, "REJECTED"},
				{0, "CANCEL", 456, 4999, "CANCELLED"},
				{0, "REQUEST", 456, 4999, "REJECTED"},
			},
			wantLimit: seededLimit,
			wantAlloc: []alloc{{0, 456, 0, "CANCELLED"}},
		},
		{
			name: "cancel after a rejected request releases nothing",
			steps: []step{
				{0, "REQUEST", 456, seededLimit + 1, "REJECTED"},
				{0, "CANCEL", 456, seededLimit + 1, "CANCELLED"},
			},
			wantLimit: seededLimit,
			wantAlloc: []alloc{{0, 456, 0, "REJECTED"}},
		},
		{
			name: "cancel of another saga leaves this saga's allocation",
			steps: []step{
				{0, "REQUEST", 456, 4999, "APPROVED"},
				{1, "CANCEL", 456, 4999, "CANCELLED"},
			},
			wantLimit: seededLimit - 4999,
			wantAlloc: []alloc{{0, 456, 4999, "ALLOCATED"}, {1, 456, 0, "CANCELLED"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool := newDB(t)
			h := app.New(slog.New(slog.DiscardHandler)).OnCreditRequest
			sagas := []uuid.UUID{uuid.New(), uuid.New()}

			var wantReplies []reply
			for i, s := range tt.steps {
				if err := handle(t, pool, h, sagas[s.saga].String(), requestPayload(s.typ, s.customerID, s.due)); err != nil {
					t.Fatalf("step %d (%s): %v", i, s.typ, err)
				}
				wantReplies = append(wantReplies, creditReply(sagas[s.saga], s.want))
			}

			want := state{
				OpenLimits: map[int64]int64{456: tt.wantLimit},
				Replies:    wantReplies,
			}
			for _, a := range tt.wantAlloc {
				want.Allocations = append(want.Allocations, allocation{
					SagaID: sagas[a.saga], CustomerID: a.customer, OrderID: 1, Amount: a.amount, Status: a.status,
				})
			}
			got := snapshot(t, pool)
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
			checkMoney(t, got)
		})
	}
}

// checkMoney checks the money invariant: what a customer's open limit lacks
// is exactly what its ALLOCATED rows hold.
func checkMoney(t *testing.T, s state) {
	t.Helper()
	held := map[int64]int64{}
	for _, a := range s.Allocations {
		if a.Status == "ALLOCATED" {
			held[a.CustomerID] += a.Amount
		}
	}
	if got := seededLimit - s.OpenLimits[456]; got != held[456] {
		t.Errorf("customer 456: limit lowered by %d, allocations hold %d", got, held[456])
	}
}

// A REQUEST and a CANCEL of one saga are handled at the same time (by two
// consumers during a rebalance, say), in either order: the second one
// waits for the first one's row, then sees its outcome. The interleaving is
// forced: the first transaction holds the row, the second is seen waiting
// for its lock, then the first commits.
func TestOnCreditRequestConcurrentRequestAndCancel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		first, second       string
		wantFirst, wantNext string // reply statuses
		wantLimit           int64
		wantAlloc           allocation // SagaID filled in
	}{
		{"REQUEST", "CANCEL", "APPROVED", "CANCELLED", seededLimit, allocation{CustomerID: 456, OrderID: 1, Amount: 4999, Status: "RELEASED"}},
		{"CANCEL", "REQUEST", "CANCELLED", "REJECTED", seededLimit, allocation{CustomerID: 456, OrderID: 1, Amount: 0, Status: "CANCELLED"}},
	}
	for _, tt := range tests {
		t.Run(tt.first+" then "+tt.second, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool := newDB(t)
			h := app.New(slog.New(slog.DiscardHandler)).OnCreditRequest
			sagaID := uuid.New()
			msg := func(typ string) consumer.Message {
				return consumer.Message{Topic: app.RequestTopic, Key: sagaID.String(), Value: requestPayload(typ, 456, 4999), ID: uuid.New()}
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
			tt.wantAlloc.SagaID = sagaID
			want := state{
				OpenLimits:  map[int64]int64{456: tt.wantLimit},
				Allocations: []allocation{tt.wantAlloc},
				Replies:     []reply{creditReply(sagaID, tt.wantFirst), creditReply(sagaID, tt.wantNext)},
			}
			got := snapshot(t, pool)
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
			checkMoney(t, got)
		})
	}
}

// badMessages are messages the customer service can never apply.
var badMessages = []struct {
	name  string
	key   string
	value []byte
}{
	{"key not a uuid", "order-1", requestPayload("REQUEST", 456, 4999)},
	{"empty key", "", requestPayload("REQUEST", 456, 4999)},
	{"payload not json", uuid.NewString(), []byte(`{"type":"REQUEST",`)},
	{"payload of the wrong shape", uuid.NewString(), []byte(`{"customer-id":456,"payment-due":"lots","type":"REQUEST"}`)},
	{"unknown type", uuid.NewString(), requestPayload("REFUND", 456, 4999)},
	{"missing type", uuid.NewString(), []byte(`{"order-id":1,"customer-id":456,"payment-due":4999}`)},
}

func TestOnCreditRequestRefusesBadMessagesPermanently(t *testing.T) {
	t.Parallel()
	for _, tt := range badMessages {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool := newDB(t)
			h := app.New(slog.New(slog.DiscardHandler)).OnCreditRequest
			want := state{OpenLimits: map[int64]int64{456: seededLimit}}
			ctx := context.Background()
			var herr error
			_ = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				herr = h(ctx, tx, consumer.Message{Topic: app.RequestTopic, Key: tt.key, Value: tt.value, ID: uuid.New()})
				// Nothing written even if the caller committed regardless.
				if diff := cmp.Diff(want, snapshot(t, tx), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("state in the handler's tx (-want +got):\n%s", diff)
				}
				return herr
			})
			if !errors.Is(herr, consumer.ErrPermanent) {
				t.Fatalf("OnCreditRequest = %v, want a permanent error", herr)
			}
			if diff := cmp.Diff(want, snapshot(t, pool), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
		})
	}
}
