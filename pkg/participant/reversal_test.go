package participant_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/contract"
	"github.com/sagabox/sagabox/pkg/participant"
)

// release asks to give back what the hold step did for another saga.
type release struct {
	Of uuid.UUID `json:"of"`
}

var releaseContract = contract.Step[release]{Name: "hold-release", ReplyType: "Released", Succeeded: "RELEASED",
	Failed: "NOT_RELEASED", Cancelled: "CANCELLED"}

// reversalFixture serves holds() (its Undo counted) and its reversal.
type reversalFixture struct {
	t  *testing.T
	db *pgxpool.Pool
	p  *participant.Participant
}

func newReversalFixture(t *testing.T) *reversalFixture {
	t.Helper()
	schema := migrations.Participant(nil)
	db := database(t, testenv.Database(t, schema))
	if _, err := db.Exec(context.Background(), `CREATE TABLE undos (saga_id uuid PRIMARY KEY, n int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	h := holds()
	undo := h.Undo
	h.Undo = func(ctx context.Context, tx pgx.Tx, c participant.Call[hold], done hold) error {
		const q = `INSERT INTO undos VALUES ($1, 1) ON CONFLICT (saga_id) DO UPDATE SET n = undos.n + 1`
		if _, err := tx.Exec(ctx, q, c.SagaID); err != nil {
			return err
		}
		return undo(ctx, tx, c, done)
	}
	rev := participant.Reversal(releaseContract, h, func(r release) (uuid.UUID, hold) { return r.Of, hold{} })
	p, err := participant.New(slog.New(slog.DiscardHandler), h, rev)
	if err != nil {
		t.Fatal(err)
	}
	return &reversalFixture{t: t, db: db, p: p}
}

// send applies one message, committed, and returns the reply's status.
func (f *reversalFixture) send(topic string, sagaID uuid.UUID, k contract.Kind, body []byte) contract.Status {
	f.t.Helper()
	st, err := f.trySend(topic, sagaID, k, body)
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// trySend is send for any goroutine.
func (f *reversalFixture) trySend(topic string, sagaID uuid.UUID, k contract.Kind, body []byte) (contract.Status, error) {
	m := consumer.Message{Topic: topic, Key: sagaID.String(), Value: body, ID: uuid.New(), EventType: string(k)}
	var st contract.Status
	err := pgx.BeginFunc(context.Background(), f.db, func(tx pgx.Tx) error {
		if err := f.p.Handle(context.Background(), tx, m); err != nil {
			return err
		}
		return tx.QueryRow(context.Background(), `SELECT payload->>'status' FROM outboxevent WHERE aggregateid = $1
			ORDER BY created_at DESC, id DESC LIMIT 1`, m.Key).Scan(&st)
	})
	if err != nil {
		return "", fmt.Errorf("%s %s of %s: %w", topic, k, sagaID, err)
	}
	return st, nil
}

func (f *reversalFixture) hold(sagaID uuid.UUID, k contract.Kind) contract.Status {
	f.t.Helper()
	body, err := holds().Contract.EncodeRequest(k, hold{Amount: 42})
	if err != nil {
		f.t.Fatal(err)
	}
	return f.send("hold.request", sagaID, k, body)
}

func (f *reversalFixture) reverse(of uuid.UUID) (uuid.UUID, contract.Status) {
	f.t.Helper()
	body, err := releaseContract.EncodeRequest(contract.Request, release{Of: of})
	if err != nil {
		f.t.Fatal(err)
	}
	id := uuid.New()
	return id, f.send("hold-release.request", id, contract.Request, body)
}

// expect checks what saga of holds, its barrier status and how often its
// step was undone.
func (f *reversalFixture) expect(of uuid.UUID, status string, held int64, undos int) {
	f.t.Helper()
	var gotHeld int64
	var gotUndos int
	err := f.db.QueryRow(context.Background(), `SELECT (SELECT coalesce(sum(amount), 0) FROM held WHERE saga_id = $1),
		(SELECT coalesce(sum(n), 0) FROM undos WHERE saga_id = $1)`, of).Scan(&gotHeld, &gotUndos)
	if err != nil {
		f.t.Fatal(err)
	}
	rec, err := participant.Lookup(context.Background(), f.db, "hold", of)
	if err != nil || rec.Status != status || gotHeld != held || gotUndos != undos {
		f.t.Errorf("saga %s: step %s (%v), holds %d, undone %d times; want %s, %d, %d", of, rec.Status, err, gotHeld, gotUndos,
			status, held, undos)
	}
}

// A reversal undoes what another saga's step did, once, whether that
// saga's own compensation comes before, after or at the same time; before
// that saga's request it leaves a marker that refuses the request.
func TestReversal(t *testing.T) {
	t.Parallel()
	f := newReversalFixture(t)

	t.Run("after the step was done", func(t *testing.T) {
		f.t = t
		of := uuid.New()
		f.hold(of, contract.Request)
		rev, st := f.reverse(of)
		if st != releaseContract.Succeeded {
			t.Errorf("reversal answered %s", st)
		}
		f.expect(of, participant.StatusUndone, 0, 1)
		if st := f.hold(of, contract.Cancel); st != holds().Contract.Cancelled {
			t.Errorf("the saga's own cancel answered %s", st)
		}
		f.expect(of, participant.StatusUndone, 0, 1)
		rec, err := participant.Lookup(context.Background(), f.db, releaseContract.Name, rev)
		var r participant.Reversed
		if err == nil {
			err = json.Unmarshal(rec.Record, &r)
		}
		if err != nil || rec.Status != participant.StatusDone || r != (participant.Reversed{SagaID: of, Was: participant.StatusDone}) {
			t.Errorf("reversal record %s %s, %v", rec.Status, rec.Record, err)
		}
	})
	t.Run("after the saga's own compensation", func(t *testing.T) {
		f.t = t
		of := uuid.New()
		f.hold(of, contract.Request)
		f.hold(of, contract.Cancel)
		if _, st := f.reverse(of); st != releaseContract.Succeeded {
			t.Errorf("reversal answered %s", st)
		}
		f.expect(of, participant.StatusUndone, 0, 1)
	})
	t.Run("before the request", func(t *testing.T) {
		f.t = t
		of := uuid.New()
		f.reverse(of)
		if st := f.hold(of, contract.Request); st != holds().Contract.Failed {
			t.Errorf("a request after its reversal answered %s", st)
		}
		f.expect(of, participant.StatusCancelled, 0, 0)
	})
	t.Run("a refused step", func(t *testing.T) {
		f.t = t
		of := uuid.New()
		body, _ := holds().Contract.EncodeRequest(contract.Request, hold{Amount: 1000})
		f.send("hold.request", of, contract.Request, body)
		if _, st := f.reverse(of); st != releaseContract.Succeeded {
			t.Errorf("reversal answered %s", st)
		}
		f.expect(of, participant.StatusRefused, 0, 0)
	})
	t.Run("at the same time as the saga's own compensation", func(t *testing.T) {
		f.t = t
		for range 20 {
			of := uuid.New()
			f.hold(of, contract.Request)
			rel, _ := releaseContract.EncodeRequest(contract.Request, release{Of: of})
			cancel, _ := holds().Contract.EncodeRequest(contract.Cancel, hold{Amount: 42})
			var wg sync.WaitGroup
			errs := make(chan error, 2)
			wg.Go(func() {
				_, err := f.trySend("hold-release.request", uuid.New(), contract.Request, rel)
				errs <- err
			})
			wg.Go(func() {
				_, err := f.trySend("hold.request", of, contract.Cancel, cancel)
				errs <- err
			})
			wg.Wait()
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			f.expect(of, participant.StatusUndone, 0, 1)
		}
	})
}
