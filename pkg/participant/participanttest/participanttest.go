// Package participanttest is the contract suite of a saga participant built
// on pkg/participant: one call runs, against the participant's own step on
// a real database, every order of delivery of its REQUEST and CANCEL with
// duplicates, a REQUEST and a CANCEL of one saga forced to run concurrently
// in both orders — also while the first one's commit is flushed but not
// visible yet — and bad messages; FuzzDecode fuzzes its decoding. After
// every case it checks the money: what the participant holds for a saga is
// the request's amount exactly when the step is DONE, nothing otherwise.
package participanttest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/contract"
	"github.com/sagabox/sagabox/pkg/participant"
)

// Subject is the participant's step under test and what the suite needs to
// drive and check it.
type Subject[R, S any] struct {
	Step participant.Step[R, S]
	// Database returns a fresh database migrated for the participant
	// (participant.Migrations, then its own), closed when the test ends.
	Database func(t *testing.T) *pgxpool.Pool
	// HeldDatabase, when set, returns the same on a server where a session
	// that sets synchronous_commit = on has its commits flushed (and
	// streamed by logical decoding) but not visible to other sessions until
	// released, as a synchronous standby that never comes makes them (see
	// internal/testenv.HeldCommitDatabase); every other session must
	// commit with synchronous_commit = local.
	HeldDatabase func(t *testing.T) *pgxpool.Pool
	// Request returns a request of saga sagaID that the step accepts,
	// preparing in db what it needs (say, a customer with enough credit).
	Request func(t *testing.T, db *pgxpool.Pool, sagaID uuid.UUID) R
	// Cancel turns a request into its compensation (nil: the same
	// payload).
	Cancel func(R) R
	// Held returns what the participant holds for the saga of req in db
	// (say, the credit taken from its customer); 0 when nothing.
	Held func(t *testing.T, db *pgxpool.Pool, sagaID uuid.UUID, req R) int64
	// Amount is what a saga of req holds once the step took effect.
	Amount func(R) int64
}

// Run runs the contract suite against s.
func Run[R, S any](t *testing.T, s Subject[R, S]) {
	t.Run("every order of delivery", func(t *testing.T) { t.Parallel(); deliveryOrders(t, s) })
	t.Run("concurrent request and cancel", func(t *testing.T) { t.Parallel(); concurrent(t, s, false) })
	if s.HeldDatabase != nil {
		t.Run("cancel while the request's commit is not visible", func(t *testing.T) { t.Parallel(); concurrent(t, s, true) })
	}
	t.Run("bad messages", func(t *testing.T) { t.Parallel(); badMessages(t, s) })
}

// message is one request message of s for saga sagaID.
func (s Subject[R, S]) message(t *testing.T, sagaID uuid.UUID, k contract.Kind, req R) consumer.Message {
	t.Helper()
	if k == contract.Cancel && s.Cancel != nil {
		req = s.Cancel(req)
	}
	body, err := s.Step.Contract.EncodeRequest(k, req)
	if err != nil {
		t.Fatal(err)
	}
	return consumer.Message{Topic: s.Step.Contract.RequestTopic(), Key: sagaID.String(), Value: body,
		ID: uuid.New(), EventType: string(k)}
}

// apply handles m as the consumer does, in its own transaction (committed
// on success), and returns the reply it wrote.
func apply(t *testing.T, db *pgxpool.Pool, p *participant.Participant, m consumer.Message) (contract.Status, error) {
	t.Helper()
	var st contract.Status
	err := pgx.BeginFunc(context.Background(), db, func(tx pgx.Tx) error {
		if err := p.Handle(context.Background(), tx, m); err != nil {
			return err
		}
		var err error
		st, err = lastReply(context.Background(), tx, m.Key)
		return err
	})
	return st, err
}

func lastReply(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, sagaID string) (contract.Status, error) {
	var st contract.Status
	err := q.QueryRow(ctx, `SELECT payload->>'status' FROM outboxevent WHERE aggregateid = $1 ORDER BY created_at DESC, id DESC LIMIT 1`,
		sagaID).Scan(&st)
	return st, err
}

func (s Subject[R, S]) participant(t *testing.T) *participant.Participant {
	t.Helper()
	p, err := participant.New(slog.New(slog.DiscardHandler), s.Step)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkHeld fails unless the saga holds the request's amount exactly when
// its step is DONE.
func (s Subject[R, S]) checkHeld(t *testing.T, db *pgxpool.Pool, sagaID uuid.UUID, req R, what string) {
	t.Helper()
	rec, err := participant.Lookup(context.Background(), db, s.Step.Contract.Name, sagaID)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	want := int64(0)
	if rec.Status == participant.StatusDone {
		want = s.Amount(req)
	}
	if got := s.Held(t, db, sagaID, req); got != want {
		t.Errorf("%s: the step is %s and holds %d, want %d", what, rec.Status, got, want)
	}
}

// deliveryOrders delivers every sequence of up to four REQUESTs and
// CANCELs of a saga (duplicates included), each saga its own, and checks
// each reply and the money after each sequence: a REQUEST is answered
// Succeeded the first time and every time after while not cancelled, Failed
// once a CANCEL came; a CANCEL always Cancelled; the amount is held exactly
// while the step is DONE.
func deliveryOrders[R, S any](t *testing.T, s Subject[R, S]) {
	db := s.Database(t)
	p := s.participant(t)
	c := s.Step.Contract
	var seqs [][]contract.Kind
	var grow func(seq []contract.Kind)
	grow = func(seq []contract.Kind) {
		if len(seq) > 0 {
			seqs = append(seqs, seq)
		}
		if len(seq) < 4 {
			grow(append(slices.Clone(seq), contract.Request))
			grow(append(slices.Clone(seq), contract.Cancel))
		}
	}
	grow(nil)
	for _, seq := range seqs {
		sagaID := uuid.New()
		req := s.Request(t, db, sagaID)
		cancelled := false
		for i, k := range seq {
			want := c.Cancelled
			if k == contract.Request {
				want = c.Succeeded
				if cancelled {
					want = c.Failed
				}
			}
			cancelled = cancelled || k == contract.Cancel
			got, err := apply(t, db, p, s.message(t, sagaID, k, req))
			if err != nil || got != want {
				t.Errorf("%v, message %d (%s): reply %q, %v; want %q", seq, i, k, got, err, want)
			}
		}
		s.checkHeld(t, db, sagaID, req, fmt.Sprint(seq))
	}
}

// concurrent forces a REQUEST and a CANCEL of one saga to run at once, in
// both orders: the first one's transaction holds the saga's barrier row
// while the second one starts and waits for it. With held, the first one
// has committed — its commit is flushed, as a relay would already have
// published its reply — but is not visible to other sessions yet.
func concurrent[R, S any](t *testing.T, s Subject[R, S], held bool) {
	ctx := context.Background()
	db := s.Database
	if held {
		db = s.HeldDatabase
	}
	pool := db(t)
	p := s.participant(t)
	c := s.Step.Contract
	for _, tc := range []struct {
		first, second contract.Kind
		want          contract.Status // the second's reply
		status        string          // the barrier's after both
	}{
		{contract.Request, contract.Cancel, c.Cancelled, participant.StatusUndone},
		{contract.Cancel, contract.Request, c.Failed, participant.StatusCancelled},
	} {
		sagaID := uuid.New()
		req := s.Request(t, pool, sagaID)
		first, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if held {
			if _, err := first.Exec(ctx, `SET synchronous_commit = on`); err != nil {
				t.Fatal(err)
			}
		}
		tx, err := first.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Handle(ctx, tx, s.message(t, sagaID, tc.first, req)); err != nil {
			t.Fatalf("%s first: %v", tc.first, err)
		}
		committed := make(chan error, 1)
		if held {
			go func() { committed <- tx.Commit(ctx) }()
			waitFor(t, pool, `wait_event = 'SyncRep'`, "the first commit was not held")
		}
		second := make(chan error, 1)
		var reply contract.Status
		m := s.message(t, sagaID, tc.second, req)
		go func() {
			var err error
			reply, err = apply(t, pool, p, m)
			second <- err
		}()
		waitFor(t, pool, `wait_event_type = 'Lock'`, "the second message did not wait for the first")
		if held {
			if _, err := pool.Exec(ctx, `SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'`); err != nil {
				t.Fatal(err)
			}
		} else {
			committed <- tx.Commit(ctx)
		}
		if err := <-committed; err != nil {
			t.Fatalf("%s first: commit: %v", tc.first, err)
		}
		if _, err := first.Exec(ctx, `RESET synchronous_commit`); err != nil {
			t.Fatal(err)
		}
		first.Release()
		if err := <-second; err != nil || reply != tc.want {
			t.Errorf("%s, then %s at once: the second replied %q, %v; want %q", tc.first, tc.second, reply, err, tc.want)
		}
		rec, err := participant.Lookup(ctx, pool, c.Name, sagaID)
		if err != nil || rec.Status != tc.status {
			t.Errorf("%s, then %s at once: the step is %q (%v), want %s", tc.first, tc.second, rec.Status, err, tc.status)
		}
		s.checkHeld(t, pool, sagaID, req, fmt.Sprintf("%s, then %s at once", tc.first, tc.second))
	}
}

// waitFor waits until a backend of pool's database matches cond in
// pg_stat_activity.
func waitFor(t *testing.T, pool *pgxpool.Pool, cond, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND `+cond).Scan(&n)
		if err == nil && n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (10s): %v", msg, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// badMessages are refused permanently — the consumer parks them — and
// write nothing.
func badMessages[R, S any](t *testing.T, s Subject[R, S]) {
	db := s.Database(t)
	p := s.participant(t)
	for name, bad := range BadMessages(s.Step.Contract.RequestTopic()) {
		_, err := apply(t, db, p, bad)
		if !errors.Is(err, consumer.ErrPermanent) {
			t.Errorf("%s: %v, want a permanent error", name, err)
		}
	}
	var written int
	err := db.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM outboxevent) + (SELECT count(*) FROM participant_step)`).Scan(&written)
	if err != nil || written != 0 {
		t.Errorf("bad messages wrote %d rows (%v), want none", written, err)
	}
}

// BadMessages are messages on topic that break the contract of any step:
// the fuzz seeds and the suite's bad-message cases.
func BadMessages(topic string) map[string]consumer.Message {
	msg := func(key, typ, value string) consumer.Message {
		return consumer.Message{Topic: topic, Key: key, Value: []byte(value), ID: uuid.New(), EventType: typ}
	}
	id := uuid.NewString()
	return map[string]consumer.Message{
		"key not a saga id":      msg("order-1", "REQUEST", `{}`),
		"empty key":              msg("", "REQUEST", `{}`),
		"no type":                msg(id, "", `{}`),
		"unknown type":           msg(id, "REFUND", `{}`),
		"value not JSON":         msg(id, "REQUEST", `{"order-id":`),
		"value not an object":    msg(id, "REQUEST", `[1, 2]`),
		"body says another type": msg(id, "REQUEST", `{"type":"CANCEL"}`),
		"another topic":          {Topic: "elsewhere.request", Key: id, Value: []byte(`{}`), ID: uuid.New(), EventType: "REQUEST"},
	}
}

// FuzzDecode feeds arbitrary keys, types and values to the decoding of
// step's messages. It fails only permanently (the message is parked); what
// it accepts has the key's saga id, a kind REQUEST or CANCEL, and a JSON
// object for a value.
func FuzzDecode[R, S any](f *testing.F, step participant.Step[R, S]) {
	for _, m := range BadMessages(step.Contract.RequestTopic()) {
		f.Add(m.Key, m.EventType, m.Value)
	}
	f.Add(uuid.NewString(), "REQUEST", []byte(`{"order-id":1,"customer-id":456,"payment-due":4999,"type":"REQUEST"}`))
	f.Add(uuid.NewString(), "CANCEL", []byte(`{"order-id":1}`))
	f.Fuzz(func(t *testing.T, key, typ string, value []byte) {
		c, err := step.Decode(consumer.Message{Topic: step.Contract.RequestTopic(), Key: key, Value: value, ID: uuid.New(), EventType: typ})
		if err != nil {
			if !errors.Is(err, consumer.ErrPermanent) {
				t.Fatalf("refused %q %q %q with a transient error %v", key, typ, value, err)
			}
			return
		}
		if want, err := uuid.Parse(key); err != nil || c.SagaID != want {
			t.Fatalf("accepted key %q as saga %s", key, c.SagaID)
		}
		if c.Kind != contract.Request && c.Kind != contract.Cancel {
			t.Fatalf("accepted type %q", typ)
		}
		if v := strings.TrimSpace(string(value)); !strings.HasPrefix(v, "{") {
			t.Fatalf("accepted a value that is not a JSON object: %q", value)
		}
	})
}
