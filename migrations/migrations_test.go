package migrations_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestEveryServiceDatabaseMigrates(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		schema migrations.Schema
		tables []string
	}{
		"order":    {migrations.Order(), []string{"consumedmessage", "order_idempotency_key", "outboxevent", "parkedmessage", "purchaseorder", "saga_count", "saga_count_change", "sagastate", "sagastate_history"}},
		"customer": {migrations.Customer(), []string{"consumedmessage", "customer", "outboxevent", "parkedmessage", "participant_step"}},
		"payment":  {migrations.Payment(), []string{"consumedmessage", "outboxevent", "parkedmessage", "participant_step", "payment"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool := testenv.Pool(t, testenv.Database(t, tc.schema))
			// A second run finds nothing to do.
			if err := migrations.Up(context.Background(), pool, tc.schema); err != nil {
				t.Fatalf("second migration run: %v", err)
			}
			rows, err := pool.Query(context.Background(),
				`SELECT table_name FROM information_schema.tables
				 WHERE table_schema = 'public' AND table_name NOT LIKE 'goose%' AND table_name NOT LIKE '%\_db\_version' ORDER BY 1`)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for rows.Next() {
				var n string
				if err := rows.Scan(&n); err != nil {
					t.Fatal(err)
				}
				got = append(got, n)
			}
			if diff := cmp.Diff(tc.tables, got); diff != "" {
				t.Errorf("tables (-want +got):\n%s", diff)
			}
		})
	}
}

// A database migrated before step deadlines existed — and before pkg/saga
// shipped the saga tables: the order service's version 2 created them — with
// sagas in every status, migrates forward: pkg/saga's migrations take the
// tables as they are and bring them up to date, the running sagas get a
// deadline that has passed (so the sweeper re-sends what they wait for),
// the finished ones none; and the service's migrations go down again.
func TestOrderMigratesForwardFromVersion2(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Pool(t, testenv.Database(t, nil))
	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { db.Close() })
	p, err := migrations.Provider(db, migrations.Service("order"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 2); err != nil {
		t.Fatal(err)
	}
	// The saga table as the order service's version 2 created it.
	_, err = pool.Exec(ctx, `CREATE TABLE sagastate (
		id uuid PRIMARY KEY, type text NOT NULL, payload jsonb NOT NULL, current_step text NOT NULL DEFAULT '',
		step_status jsonb NOT NULL DEFAULT '{}',
		status text NOT NULL CHECK (status IN ('STARTED', 'SUCCEEDED', 'ABORTING', 'ABORTED')),
		version integer NOT NULL DEFAULT 0, created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
		CREATE INDEX sagastate_status_idx ON sagastate (status, updated_at) WHERE status IN ('STARTED', 'ABORTING');
		ALTER TABLE sagastate REPLICA IDENTITY FULL`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, `INSERT INTO sagastate (id, type, payload, current_step, step_status, status, version, updated_at) VALUES
		('00000000-0000-0000-0000-000000000001', 'order-placement', '{}', 'payment', '{"credit-approval":"SUCCEEDED","payment":"STARTED"}', 'STARTED', 1, now() - interval '1 day'),
		('00000000-0000-0000-0000-000000000002', 'order-placement', '{}', 'credit-approval', '{"credit-approval":"COMPENSATING","payment":"FAILED"}', 'ABORTING', 2, now() - interval '1 day'),
		('00000000-0000-0000-0000-000000000003', 'order-placement', '{}', 'payment', '{"credit-approval":"SUCCEEDED","payment":"SUCCEEDED"}', 'SUCCEEDED', 2, now() - interval '1 day')`)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrations.Up(ctx, pool, migrations.Order()); err != nil {
		t.Fatalf("migrate forward: %v", err)
	}
	rows, err := pool.Query(ctx, `SELECT status, attempt, deadline IS NOT NULL AND deadline <= now(),
		status_since = updated_at FROM sagastate ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Status       string
		Attempt      int
		DueNow       bool
		SinceUpdated bool
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	want := []row{{"STARTED", 0, true, true}, {"ABORTING", 0, true, true}, {"SUCCEEDED", 0, false, true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sagas after migrating (-want +got):\n%s", diff)
	}
	if _, err := p.DownTo(ctx, 2); err != nil {
		t.Fatalf("migrate down: %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM sagastate`).Scan(&n); err != nil || n != 3 {
		t.Errorf("after down: %d sagas (%v)", n, err)
	}
}

// The participants' databases migrate forward with their rows intact: what
// each step did for each saga moves into pkg/participant's barrier table,
// and the migration goes down again.
func TestParticipantsMigrateForwardFromVersion2(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, tc := range map[string]struct {
		schema  migrations.Schema
		v2, v3  string // rows as versions 2 and 3 held them
		want    []string
		refunds string // what still holds money after migrating
	}{
		"customer": {migrations.Customer(),
			`INSERT INTO credit_allocation (saga_id, customer_id, order_id, amount, status) VALUES
				('00000000-0000-0000-0000-000000000001', 456, 1, 100, 'ALLOCATED'), ('00000000-0000-0000-0000-000000000002', 456, 2, 200, 'RELEASED')`,
			`INSERT INTO credit_allocation (saga_id, customer_id, order_id, amount, status) VALUES
				('00000000-0000-0000-0000-000000000003', 999, 3, 0, 'CANCELLED'), ('00000000-0000-0000-0000-000000000004', 999, 4, 0, 'REJECTED')`,
			[]string{`credit-approval DONE {"amount": 100, "orderId": 1, "customerId": 456}`,
				`credit-approval UNDONE {"amount": 200, "orderId": 2, "customerId": 456}`,
				`credit-approval CANCELLED <nil>`,
				`credit-approval REFUSED {"amount": 0, "orderId": 4, "customerId": 999}`}, ""},
		"payment": {migrations.Payment(),
			`INSERT INTO payment (saga_id, order_id, customer_id, amount, card_last4, status) VALUES
				('00000000-0000-0000-0000-000000000001', 1, 456, 100, '4444', 'COMPLETED')`,
			`INSERT INTO payment (saga_id, order_id, customer_id, amount, card_last4, status) VALUES
				('00000000-0000-0000-0000-000000000002', 2, 456, 0, '4444', 'CANCELLED')`,
			nil, `SELECT count(*) FROM payment WHERE status = 'CANCELLED'`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool, p := testenv.DatabaseAt(t, tc.schema, 2)
			if _, err := pool.Exec(ctx, tc.v2); err != nil {
				t.Fatal(err)
			}
			if _, err := p.UpTo(ctx, 3); err != nil {
				t.Fatal(err)
			}
			if _, err := pool.Exec(ctx, tc.v3); err != nil {
				t.Fatal(err)
			}
			if err := migrations.Up(ctx, pool, tc.schema); err != nil {
				t.Fatalf("migrate forward: %v", err)
			}
			rows, err := pool.Query(ctx, `SELECT step || ' ' || status || ' ' || coalesce(record::text, '<nil>') FROM participant_step ORDER BY saga_id`)
			if err != nil {
				t.Fatal(err)
			}
			got, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if want == nil {
				want = []string{`payment DONE {"amount": 100, "orderId": 1, "cardLast4": "4444", "paymentId": 1}`, `payment CANCELLED <nil>`}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("barrier rows after migrating (-want +got):\n%s", diff)
			}
			if tc.refunds != "" {
				var n int
				if err := pool.QueryRow(ctx, tc.refunds).Scan(&n); err != nil || n != 0 {
					t.Errorf("%s = %d (%v), want 0: the markers moved to the barrier", tc.refunds, n, err)
				}
			}
			if _, err := p.DownTo(ctx, 2); err != nil {
				t.Fatalf("migrate down: %v", err)
			}
		})
	}
}
