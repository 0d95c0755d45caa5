package charge_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/contracts"
	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/card"
	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/contract"
	"github.com/sagabox/sagabox/pkg/participant"
	"github.com/sagabox/sagabox/pkg/participant/participanttest"
	"github.com/sagabox/sagabox/services/payment/internal/charge"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	goodCard    = "1111-2222-3333-4444"
	refusedCard = "4000-0000-0000-9999"
)

func keys(t testing.TB) card.Keys {
	t.Helper()
	_, k := testenv.CardKeys(t)
	return k
}

func sealed(t testing.TB, k card.Keys, saga uuid.UUID, number string) string {
	t.Helper()
	s, err := k.Seal(number, []byte(saga.String()))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// charged returns what saga's payment holds: its amount while COMPLETED.
func charged(t *testing.T, db *pgxpool.Pool, saga uuid.UUID) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(context.Background(), `SELECT coalesce(sum(amount), 0) FROM payment WHERE saga_id = $1 AND status = 'COMPLETED'`,
		saga).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The participant contract suite: every order of delivery, concurrent
// REQUEST and CANCEL (also across a commit not visible yet), bad messages;
// the money is right after each: a saga's card is charged its amount
// exactly while the step is DONE. A CANCEL carries no card, as the order
// service sends it.
func TestPaymentContract(t *testing.T) {
	t.Parallel()
	k := keys(t)
	participanttest.Run(t, participanttest.Subject[contracts.PaymentRequest, charge.Charged]{
		Step:     charge.Payment(k),
		Database: func(t *testing.T) *pgxpool.Pool { return testenv.Pool(t, testenv.Database(t, migrations.Payment())) },
		HeldDatabase: func(t *testing.T) *pgxpool.Pool {
			return testenv.Pool(t, testenv.HeldCommitDatabase(t, migrations.Payment()))
		},
		Request: func(t *testing.T, _ *pgxpool.Pool, saga uuid.UUID) contracts.PaymentRequest {
			return contracts.PaymentRequest{OrderID: 1, CustomerID: 456, PaymentDue: 4999, CardSealed: sealed(t, k, saga, goodCard)}
		},
		Cancel: func(r contracts.PaymentRequest) contracts.PaymentRequest { r.CardSealed = ""; return r },
		Held: func(t *testing.T, db *pgxpool.Pool, saga uuid.UUID, _ contracts.PaymentRequest) int64 {
			return charged(t, db, saga)
		},
		Amount: func(r contracts.PaymentRequest) int64 { return r.PaymentDue },
	})
}

func FuzzDecode(f *testing.F) { participanttest.FuzzDecode(f, charge.Payment(keys(f))) }

type fixture struct {
	t    *testing.T
	db   *pgxpool.Pool
	p    *participant.Participant
	keys card.Keys
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	k := keys(t)
	p, err := participant.New(slog.New(slog.DiscardHandler), charge.Payment(k))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, db: testenv.Pool(t, testenv.Database(t, migrations.Payment())), p: p, keys: k}
}

// send handles a message of saga in its own transaction, committed on
// success, and returns the reply's status or the handler's error.
func (f *fixture) send(saga uuid.UUID, k contract.Kind, r contracts.PaymentRequest) (contract.Status, error) {
	f.t.Helper()
	c := contracts.Payment()
	body, err := c.EncodeRequest(k, r)
	if err != nil {
		f.t.Fatal(err)
	}
	var st contract.Status
	err = pgx.BeginFunc(context.Background(), f.db, func(tx pgx.Tx) error {
		m := consumer.Message{Topic: c.RequestTopic(), Key: saga.String(), Value: body, ID: uuid.New(), EventType: string(k)}
		if err := f.p.Handle(context.Background(), tx, m); err != nil {
			return err
		}
		return tx.QueryRow(context.Background(), `SELECT payload->>'status' FROM outboxevent WHERE aggregateid = $1
			ORDER BY created_at DESC LIMIT 1`, saga.String()).Scan(&st)
	})
	return st, err
}

type payment struct {
	Amount    int64
	CardLast4 string
	Status    string
}

func (f *fixture) payments(saga uuid.UUID) []payment {
	f.t.Helper()
	rows, _ := f.db.Query(context.Background(), `SELECT amount, card_last4, status FROM payment WHERE saga_id = $1 ORDER BY id`, saga)
	ps, err := pgx.CollectRows(rows, pgx.RowToStructByPos[payment])
	if err != nil {
		f.t.Fatal(err)
	}
	return ps
}

// The payment rules: a card ending in 9999 is refused (a FAILED payment,
// nothing charged), any other charged; a cancel refunds a charge. Only the
// card's last four characters are kept.
func TestPaymentRules(t *testing.T) {
	t.Parallel()
	R, C := contract.Request, contract.Cancel
	tests := []struct {
		name  string
		card  string
		msgs  []contract.Kind
		want  []contract.Status
		rows  []payment
		stays string // the barrier's status
	}{
		{"a card ending in 9999 is refused", refusedCard, []contract.Kind{R}, []contract.Status{"FAILED"},
			[]payment{{4999, "9999", "FAILED"}}, participant.StatusRefused},
		{"another card is charged", goodCard, []contract.Kind{R}, []contract.Status{"REQUESTED"},
			[]payment{{4999, "4444", "COMPLETED"}}, participant.StatusDone},
		{"a repeated refused request stays refused", refusedCard, []contract.Kind{R, R}, []contract.Status{"FAILED", "FAILED"},
			[]payment{{4999, "9999", "FAILED"}}, participant.StatusRefused},
		{"a cancel refunds", goodCard, []contract.Kind{R, C}, []contract.Status{"REQUESTED", "CANCELLED"},
			[]payment{{4999, "4444", "REFUNDED"}}, participant.StatusUndone},
		{"a cancel of a refused payment leaves it failed", refusedCard, []contract.Kind{R, C}, []contract.Status{"FAILED", "CANCELLED"},
			[]payment{{4999, "9999", "FAILED"}}, participant.StatusRefused},
		{"a cancel first charges nothing, and refuses the request", goodCard, []contract.Kind{C, R}, []contract.Status{"CANCELLED", "FAILED"},
			nil, participant.StatusCancelled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			saga := uuid.New()
			for i, k := range tc.msgs {
				r := contracts.PaymentRequest{OrderID: 1, CustomerID: 456, PaymentDue: 4999}
				if k == contract.Request {
					r.CardSealed = sealed(t, f.keys, saga, tc.card)
				}
				if got, err := f.send(saga, k, r); err != nil || got != tc.want[i] {
					t.Errorf("message %d (%s): %s, %v; want %s", i, k, got, err, tc.want[i])
				}
			}
			if diff := cmp.Diff(tc.rows, f.payments(saga), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("payments (-want +got):\n%s", diff)
			}
			if rec, err := participant.Lookup(context.Background(), f.db, "payment", saga); err != nil || rec.Status != tc.stays {
				t.Errorf("step %q (%v), want %s", rec.Status, err, tc.stays)
			}
		})
	}
}

// A request that can never be applied is refused permanently (the
// consumer parks it), charges nothing, writes nothing, and its error never
// quotes the card.
func TestUnusableRequestsAreParked(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	saga, other := uuid.New(), uuid.New()
	for name, r := range map[string]contracts.PaymentRequest{
		"no card":                        {OrderID: 1, PaymentDue: 4999},
		"no amount":                      {OrderID: 1, PaymentDue: 0, CardSealed: sealed(t, f.keys, saga, goodCard)},
		"a card sealed for another saga": {OrderID: 1, PaymentDue: 4999, CardSealed: sealed(t, f.keys, other, goodCard)},
		"a card of another key":          {OrderID: 1, PaymentDue: 4999, CardSealed: sealed(t, keys(t), saga, goodCard)},
		"a card tampered with":           {OrderID: 1, PaymentDue: 4999, CardSealed: sealed(t, f.keys, saga, goodCard) + "A"},
		"a card in clear":                {OrderID: 1, PaymentDue: 4999, CardSealed: goodCard},
	} {
		_, err := f.send(saga, contract.Request, r)
		if !errors.Is(err, consumer.ErrPermanent) {
			t.Errorf("%s: %v, want a permanent error", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "3333") {
			t.Errorf("%s: the error quotes the card: %v", name, err)
		}
	}
	var n int
	if err := f.db.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM payment) + (SELECT count(*) FROM participant_step) + (SELECT count(*) FROM outboxevent)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d rows written (%v), want none", n, err)
	}
}

// GET /payments?orderId= lists an order's payments; bad input is a 400.
func TestRoutes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	saga := uuid.New()
	if _, err := f.send(saga, contract.Request, contracts.PaymentRequest{OrderID: 9, CustomerID: 456, PaymentDue: 4999,
		CardSealed: sealed(t, f.keys, saga, goodCard)}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(charge.Routes(f.p, f.db, http.NotFoundHandler(), slog.New(slog.DiscardHandler)))
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
	var ps []map[string]any
	if code := get("/payments?orderId=9", &ps); code != 200 || len(ps) != 1 || ps[0]["status"] != "COMPLETED" ||
		ps[0]["creditCardLast4"] != "4444" || ps[0]["amount"] != float64(4999) || ps[0]["sagaId"] != saga.String() {
		t.Errorf("GET /payments?orderId=9 = %d %v", code, ps)
	}
	if code := get("/payments?orderId=10", &ps); code != 200 || len(ps) != 0 {
		t.Errorf("GET /payments?orderId=10 = %d %v, want an empty list", code, ps)
	}
	var rec participant.Record
	if code := get("/steps/payment/"+saga.String(), &rec); code != 200 || rec.Status != participant.StatusDone {
		t.Errorf("GET /steps/payment/… = %d %+v", code, rec)
	}
	for _, path := range []string{"/payments", "/payments?orderId=x", "/payments?orderId=0"} {
		var e map[string]string
		if code := get(path, &e); code != 400 || e["error"] == "" {
			t.Errorf("GET %s = %d %v, want 400", path, code, e)
		}
	}
}
