package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/services/order/internal/app"
)

// legacyOrder is an order an older version stored, its card in clear.
type legacyOrder struct {
	id     int64
	saga   uuid.UUID
	number string
	status string // its saga's
	step   string // its saga's current step
	steps  string // its saga's step statuses
}

// dumpTables returns every row of every table of the public schema as text.
func dumpTables(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, table := range tables {
		rows, err := pool.Query(ctx, fmt.Sprintf(`SELECT t::text FROM %s t`, pgx.Identifier{table}.Sanitize()))
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&all, "%s: %s\n", table, strings.Join(texts, "\n"))
	}
	return all.String()
}

// A database of the version before sealed cards, with orders in every saga
// status, migrates forward: the last four characters of every card are
// kept; the number leaves every saga that can no longer send a payment
// request at once, the outbox rows that carry it go; the order service's
// start seals the rest, and such a saga goes on to send a payment request
// with the sealed card. Nothing in clear is left anywhere, nor can be
// written again; and the migration goes down.
func TestLegacyCardsAreSealed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, p := testenv.DatabaseAt(t, migrations.Order(), 5)
	orders := []legacyOrder{
		{1, uuid.New(), "4111-1111-1111-1111", "STARTED", "credit-approval", `{"credit-approval":"STARTED"}`},
		{2, uuid.New(), "5500 0000 0000 0004", "STARTED", "payment", `{"credit-approval":"SUCCEEDED","payment":"STARTED"}`},
		{3, uuid.New(), "4000056655665556", "SUCCEEDED", "payment", `{"credit-approval":"SUCCEEDED","payment":"SUCCEEDED"}`},
		{4, uuid.New(), "4000-0027-6000-3184", "ABORTING", "credit-approval", `{"credit-approval":"COMPENSATING","payment":"FAILED"}`},
		{5, uuid.New(), "3782-822463-10005", "ABORTED", "credit-approval", `{"credit-approval":"FAILED"}`},
	}
	for _, o := range orders {
		payload := fmt.Sprintf(`{"order-id":%d,"customer-id":456,"payment-due":4999,"credit-card-no":%q,"type":"REQUEST"}`, o.id, o.number)
		_, err := pool.Exec(ctx, `INSERT INTO purchaseorder (id, customer_id, item_id, quantity, payment_due, credit_card_no, saga_id)
			VALUES ($1, 456, 1, 1, 4999, $2, $3)`, o.id, o.number, o.saga)
		if err != nil {
			t.Fatal(err)
		}
		_, err = pool.Exec(ctx, `INSERT INTO sagastate (id, type, payload, current_step, step_status, status)
			VALUES ($1, 'order-placement', $2, $3, $4, $5)`, o.saga, payload, o.step, o.steps, o.status)
		if err != nil {
			t.Fatal(err)
		}
		_, err = pool.Exec(ctx, `INSERT INTO outboxevent (id, aggregatetype, aggregateid, type, payload)
			VALUES (gen_random_uuid(), 'credit-approval', $1, 'REQUEST', $2)`, o.saga.String(), payload)
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO outboxevent (id, aggregatetype, aggregateid, type, payload)
		VALUES (gen_random_uuid(), 'order-admin', 'x', 'OperatorAction', '{"action":"abort"}')`); err != nil {
		t.Fatal(err)
	}

	if err := migrations.Up(ctx, pool, migrations.Order()); err != nil {
		t.Fatalf("migrate forward: %v", err)
	}
	rows, err := pool.Query(ctx, `SELECT p.id, p.credit_card_last4, p.credit_card_no IS NOT NULL, s.payload ? 'credit-card-no'
		FROM purchaseorder p JOIN sagastate s ON s.id = p.saga_id ORDER BY p.id`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		ID                     int64
		Last4                  string
		InClear, InClearInSaga bool
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	want := []row{{1, "1111", true, true}, {2, "0004", true, true}, {3, "5556", false, false}, {4, "3184", false, false}, {5, "0005", false, false}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after migrating (-want +got):\n%s", diff)
	}
	var outbox []string
	rows, _ = pool.Query(ctx, `SELECT type FROM outboxevent`)
	if outbox, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || !cmp.Equal(outbox, []string{"OperatorAction"}) {
		t.Errorf("outbox after migrating: %v (%v), want only the row without a card", outbox, err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO purchaseorder (customer_id, item_id, quantity, payment_due, credit_card_no, credit_card_last4, saga_id)
		VALUES (456, 1, 1, 1, '4111111111111111', '1111', gen_random_uuid())`); err == nil {
		t.Error("a new order with its card in clear was stored")
	}

	// The order service's start seals the rest.
	settings := app.DefaultSettings()
	_, settings.CardKeys = testenv.CardKeys(t)
	a := newAppWith(t, pool, settings)
	if n, err := a.SealLegacyCards(ctx); err != nil || n != 2 {
		t.Fatalf("SealLegacyCards = %d, %v; want 2 sealed", n, err)
	}
	if n, err := a.SealLegacyCards(ctx); err != nil || n != 0 {
		t.Errorf("second SealLegacyCards = %d, %v; want nothing left", n, err)
	}
	dump := dumpTables(t, pool)
	for _, o := range orders {
		for _, n := range []string{o.number, strings.NewReplacer("-", "", " ", "").Replace(o.number)} {
			if strings.Contains(dump, n) {
				t.Errorf("card %s still in clear in the database:\n%s", n, dump)
			}
		}
	}
	for _, o := range orders[:2] {
		var sealed string
		var payload requestPayload
		err := pool.QueryRow(ctx, `SELECT p.credit_card_sealed, s.payload FROM purchaseorder p JOIN sagastate s ON s.id = p.saga_id
			WHERE p.id = $1`, o.id).Scan(&sealed, &payload)
		if err != nil {
			t.Fatal(err)
		}
		if sealed != payload.CardSealed {
			t.Errorf("order %d: sealed %q in the order, %q in the saga", o.id, sealed, payload.CardSealed)
		}
		if got, err := settings.CardKeys.Open(sealed, []byte(o.saga.String())); err != nil || got != o.number {
			t.Errorf("order %d: sealed card opens to %q, %v", o.id, got, err)
		}
	}

	// The saga in flight goes on: its payment request carries the sealed card.
	if err := onReply(t, pool, a, replyMessage(stepCredit, orders[0].saga.String(), "APPROVED")); err != nil {
		t.Fatalf("credit approval of a sealed legacy saga: %v", err)
	}
	var req requestPayload
	if err := pool.QueryRow(ctx, `SELECT payload FROM outboxevent WHERE aggregatetype = 'payment'`).Scan(&req); err != nil {
		t.Fatal(err)
	}
	if got, err := settings.CardKeys.Open(req.CardSealed, []byte(orders[0].saga.String())); err != nil || got != orders[0].number {
		t.Errorf("payment request %+v: card opens to %q, %v", req, got, err)
	}

	if _, err := p.DownTo(ctx, 5); err != nil {
		t.Fatalf("migrate down: %v", err)
	}
	rows, _ = pool.Query(ctx, `SELECT credit_card_no FROM purchaseorder ORDER BY id`)
	cards, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if diff := cmp.Diff([]string{"****1111", "****0004", "****5556", "****3184", "****0005"}, cards); err != nil || diff != "" {
		t.Errorf("cards after migrating down (%v) (-want +got):\n%s", err, diff)
	}
}
