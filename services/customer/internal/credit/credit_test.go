package credit_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/contracts"
	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/contract"
	"github.com/sagabox/sagabox/pkg/participant"
	"github.com/sagabox/sagabox/pkg/participant/participanttest"
	"github.com/sagabox/sagabox/services/customer/internal/credit"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// seededLimit is the open limit migrations give customer 456.
const seededLimit = 50000

func newCustomer(t *testing.T, db *pgxpool.Pool, limit int64) int64 {
	t.Helper()
	id := 1_000_000 + rand.Int64N(1_000_000_000)
	if _, err := db.Exec(context.Background(), `INSERT INTO customer (id, open_limit) VALUES ($1, $2)`, id, limit); err != nil {
		t.Fatal(err)
	}
	return id
}

func openLimit(t *testing.T, db *pgxpool.Pool, id int64) int64 {
	t.Helper()
	var limit int64
	if err := db.QueryRow(context.Background(), `SELECT open_limit FROM customer WHERE id = $1`, id).Scan(&limit); err != nil {
		t.Fatal(err)
	}
	return limit
}

// The participant contract suite: every order of delivery, concurrent
// REQUEST and CANCEL (also across a commit not visible yet), bad messages;
// the money is right after each: a saga's amount is off its customer's
// limit exactly while the step is DONE.
func TestCreditApprovalContract(t *testing.T) {
	t.Parallel()
	const limit = 1_000_000
	participanttest.Run(t, participanttest.Subject[contracts.CreditRequest, credit.Reservation]{
		Step:     credit.Approval(),
		Database: func(t *testing.T) *pgxpool.Pool { return testenv.Pool(t, testenv.Database(t, migrations.Customer())) },
		HeldDatabase: func(t *testing.T) *pgxpool.Pool {
			return testenv.Pool(t, testenv.HeldCommitDatabase(t, migrations.Customer()))
		},
		Request: func(t *testing.T, db *pgxpool.Pool, _ uuid.UUID) contracts.CreditRequest {
			return contracts.CreditRequest{OrderID: 1, CustomerID: newCustomer(t, db, limit), PaymentDue: 4999}
		},
		Held: func(t *testing.T, db *pgxpool.Pool, _ uuid.UUID, r contracts.CreditRequest) int64 {
			return limit - openLimit(t, db, r.CustomerID)
		},
		Amount: func(r contracts.CreditRequest) int64 { return r.PaymentDue },
	})
}

func FuzzDecode(f *testing.F) { participanttest.FuzzDecode(f, credit.Approval()) }

// fixture is the credit step over a fresh customer database.
type fixture struct {
	t  *testing.T
	db *pgxpool.Pool
	p  *participant.Participant
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	p, err := participant.New(slog.New(slog.DiscardHandler), credit.Approval())
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, db: testenv.Pool(t, testenv.Database(t, migrations.Customer())), p: p}
}

// send handles a message of saga, committed on success, and returns the
// reply's status.
func (f *fixture) send(saga uuid.UUID, k contract.Kind, customerID, due int64) contract.Status {
	f.t.Helper()
	c := contracts.CreditApproval()
	body, err := c.EncodeRequest(k, contracts.CreditRequest{OrderID: 7, CustomerID: customerID, PaymentDue: due})
	if err != nil {
		f.t.Fatal(err)
	}
	var st contract.Status
	err = pgx.BeginFunc(context.Background(), f.db, func(tx pgx.Tx) error {
		m := consumer.Message{Topic: c.RequestTopic(), Key: saga.String(), Value: body, ID: uuid.New(), EventType: string(k)}
		if err := f.p.Handle(context.Background(), tx, m); err != nil {
			return err
		}
		return tx.QueryRow(context.Background(), `SELECT payload->>'status' FROM outboxevent
			WHERE aggregateid = $1 AND aggregatetype = 'credit-approval' AND type = 'CreditUpdated'
			ORDER BY created_at DESC LIMIT 1`, saga.String()).Scan(&st)
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// The credit rules: a request is approved and taken from the open limit
// when it fits, rejected otherwise (over the limit, an unknown customer, no
// amount) and then takes nothing, also later when the limit came back; a
// cancel gives back exactly what its saga took.
func TestCreditRules(t *testing.T) {
	t.Parallel()
	type msg struct {
		saga     int
		kind     contract.Kind
		customer int64
		due      int64
		want     contract.Status
	}
	R, C := contract.Request, contract.Cancel
	tests := []struct {
		name      string
		msgs      []msg
		wantLimit int64 // customer 456's
	}{
		{"within the limit: approved and taken", []msg{{0, R, 456, 4999, "APPROVED"}}, seededLimit - 4999},
		{"exactly the open limit: approved", []msg{{0, R, 456, seededLimit, "APPROVED"}}, 0},
		{"over the limit: rejected, nothing taken", []msg{{0, R, 456, seededLimit + 1, "REJECTED"}}, seededLimit},
		{"unknown customer: rejected", []msg{{0, R, 999, 4999, "REJECTED"}}, seededLimit},
		{"zero amount: rejected", []msg{{0, R, 456, 0, "REJECTED"}}, seededLimit},
		{"a second saga is rejected by what the first took", []msg{{0, R, 456, 30000, "APPROVED"}, {1, R, 456, 30000, "REJECTED"}}, seededLimit - 30000},
		{"a cancel gives back what its saga took, once", []msg{{0, R, 456, 30000, "APPROVED"}, {0, C, 456, 30000, "CANCELLED"}, {0, C, 456, 30000, "CANCELLED"}}, seededLimit},
		{"a rejected request stays rejected after the limit came back", []msg{
			{0, R, 456, 30000, "APPROVED"}, {1, R, 456, 30000, "REJECTED"}, {0, C, 456, 30000, "CANCELLED"}, {1, R, 456, 30000, "REJECTED"},
		}, seededLimit},
		{"a cancel gives back what was taken, not what it says", []msg{{0, R, 456, 100, "APPROVED"}, {0, C, 456, 40000, "CANCELLED"}}, seededLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			sagas := []uuid.UUID{uuid.New(), uuid.New()}
			for i, m := range tc.msgs {
				if got := f.send(sagas[m.saga], m.kind, m.customer, m.due); got != m.want {
					t.Errorf("message %d (%s of saga %d): reply %s, want %s", i, m.kind, m.saga, got, m.want)
				}
			}
			if got := openLimit(t, f.db, 456); got != tc.wantLimit {
				t.Errorf("open limit %d, want %d", got, tc.wantLimit)
			}
		})
	}
}

// Sagas over one customer's limit at once never overdraw it: of twenty
// requests of 4,999 against 50,000, ten are approved.
func TestConcurrentSagasNeverOverdraw(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		approved int
	)
	for range 20 {
		wg.Go(func() {
			if f.send(uuid.New(), contract.Request, 456, 4999) == "APPROVED" {
				mu.Lock()
				approved++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if approved != 10 || openLimit(t, f.db, 456) != seededLimit-10*4999 {
		t.Errorf("%d approved, open limit %d; want 10 and %d", approved, openLimit(t, f.db, 456), seededLimit-10*4999)
	}
}

// The HTTP API: a customer's open limit, the step's record of a saga.
func TestRoutes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	saga := uuid.New()
	f.send(saga, contract.Request, 456, 4999)
	srv := httptest.NewServer(credit.Routes(f.p, f.db, http.NotFoundHandler(), slog.New(slog.DiscardHandler)))
	defer srv.Close()
	get := func(path string, out any) int {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_ = json.NewDecoder(resp.Body).Decode(out)
		return resp.StatusCode
	}
	var c map[string]int64
	if code := get("/customers/456", &c); code != 200 || c["openLimit"] != seededLimit-4999 {
		t.Errorf("GET /customers/456 = %d %v", code, c)
	}
	var rec participant.Record
	if code := get("/steps/credit-approval/"+saga.String(), &rec); code != 200 || rec.Status != participant.StatusDone {
		t.Errorf("GET /steps/credit-approval/%s = %d %+v", saga, code, rec)
	}
	var r credit.Reservation
	if err := json.Unmarshal(rec.Record, &r); err != nil || r != (credit.Reservation{CustomerID: 456, OrderID: 7, Amount: 4999}) {
		t.Errorf("record %s (%v)", rec.Record, err)
	}
	var steps []contract.Info
	if code := get("/steps", &steps); code != 200 || !cmp.Equal(steps, []contract.Info{contracts.CreditApproval().Info()}) {
		t.Errorf("GET /steps = %d %+v", code, steps)
	}
	for path, want := range map[string]int{"/customers/999": 404, "/customers/abc": 404, "/steps/payment/" + saga.String(): 404,
		"/steps/credit-approval/" + uuid.NewString(): 404, "/steps/credit-approval/nope": 400, "/nope": 404} {
		var e map[string]string
		if code := get(path, &e); code != want || e["error"] == "" {
			t.Errorf("GET %s = %d %v, want %d with an error", path, code, e, want)
		}
	}
}
