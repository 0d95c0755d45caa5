package migrations_test

import (
	"context"
	"io/fs"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestEveryServiceDatabaseMigrates(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		fsys   fs.FS
		tables []string
	}{
		"order":    {migrations.Order(), []string{"consumedmessage", "order_idempotency_key", "outboxevent", "parkedmessage", "purchaseorder", "sagastate", "sagastate_history"}},
		"customer": {migrations.Customer(), []string{"consumedmessage", "credit_allocation", "customer", "outboxevent", "parkedmessage"}},
		"payment":  {migrations.Payment(), []string{"consumedmessage", "outboxevent", "parkedmessage", "payment"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool := testenv.Pool(t, testenv.Database(t, tc.fsys))
			// A second run finds nothing to do.
			if err := migrations.Up(context.Background(), pool, tc.fsys); err != nil {
				t.Fatalf("second migration run: %v", err)
			}
			rows, err := pool.Query(context.Background(),
				`SELECT table_name FROM information_schema.tables
				 WHERE table_schema = 'public' AND table_name NOT LIKE 'goose%' ORDER BY 1`)
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

// A database migrated before step deadlines existed, with sagas in every
// status, migrates forward: the running ones get a deadline that has
// passed (so the sweeper re-sends what they wait for), the finished ones
// none; and the migration goes down again.
func TestOrderMigratesForwardFromVersion2(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, p := testenv.DatabaseAt(t, migrations.Order(), 2)
	_, err := pool.Exec(ctx, `INSERT INTO sagastate (id, type, payload, current_step, step_status, status, version, updated_at) VALUES
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

// The participants' databases migrate forward with their rows intact and
// take the new statuses.
func TestParticipantsMigrateForwardFromVersion2(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, tc := range map[string]struct {
		fsys          fs.FS
		before, after string
	}{
		"customer": {migrations.Customer(),
			`INSERT INTO credit_allocation (saga_id, customer_id, order_id, amount, status) VALUES (gen_random_uuid(), 456, 1, 100, 'ALLOCATED')`,
			`INSERT INTO credit_allocation (saga_id, customer_id, order_id, amount, status) VALUES (gen_random_uuid(), 999, 2, 0, 'CANCELLED'), (gen_random_uuid(), 999, 3, 0, 'REJECTED')`},
		"payment": {migrations.Payment(),
			`INSERT INTO payment (saga_id, order_id, customer_id, amount, card_last4, status) VALUES (gen_random_uuid(), 1, 456, 100, '4444', 'COMPLETED')`,
			`INSERT INTO payment (saga_id, order_id, customer_id, amount, card_last4, status) VALUES (gen_random_uuid(), 2, 456, 0, '4444', 'CANCELLED')`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool, p := testenv.DatabaseAt(t, tc.fsys, 2)
			if _, err := pool.Exec(ctx, tc.before); err != nil {
				t.Fatal(err)
			}
			if _, err := pool.Exec(ctx, tc.after); err == nil {
				t.Fatal("version 2 took the new statuses")
			}
			if err := migrations.Up(ctx, pool, tc.fsys); err != nil {
				t.Fatalf("migrate forward: %v", err)
			}
			if _, err := pool.Exec(ctx, tc.after); err != nil {
				t.Fatalf("new statuses after migrating: %v", err)
			}
			if _, err := p.DownTo(ctx, 2); err != nil {
				t.Fatalf("migrate down: %v", err)
			}
		})
	}
}
