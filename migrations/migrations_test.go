package migrations_test

import (
	"context"
	"io/fs"
	"testing"

	"github.com/google/go-cmp/cmp"

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
		"order":    {migrations.Order(), []string{"consumedmessage", "outboxevent", "parkedmessage", "purchaseorder", "sagastate"}},
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
