package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/services/order/internal/app"
)

// Idempotency keys are kept for their TTL, then pruned: a key older than
// that goes (its order stays), a younger one is kept and still replays.
func TestIdempotencyKeysArePrunedAfterTheirTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Pool(t, testenv.Database(t, migrations.Order()))
	s := app.DefaultSettings()
	s.IdempotencyKeyTTL = time.Second
	a := newAppWith(t, pool, s)
	old, _, err := a.PlaceOrderOnce(ctx, "old-key", validOrder)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE order_idempotency_key SET created_at = now() - interval '1 hour' WHERE key = 'old-key'`); err != nil {
		t.Fatal(err)
	}
	young, _, err := a.PlaceOrderOnce(ctx, "young-key", validOrder)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE order_idempotency_key SET created_at = now() + interval '1 hour' WHERE key = 'young-key'`); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.RunKeyPruner(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("pruner: %v", err)
		}
	}()
	keys := func() []string {
		rows, err := pool.Query(ctx, `SELECT key FROM order_idempotency_key ORDER BY key`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var ks []string
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				t.Fatal(err)
			}
			ks = append(ks, k)
		}
		return ks
	}
	testenv.Eventually(t, 10*time.Second, func() bool { ks := keys(); return len(ks) == 1 && ks[0] == "young-key" },
		"the old key was not pruned, or the young one was: %v", keys())
	if o, replayed, err := a.PlaceOrderOnce(ctx, "young-key", validOrder); err != nil || !replayed || o.ID != young.ID {
		t.Errorf("the kept key: order %d, replayed %v, %v; want order %d replayed", o.ID, replayed, err, young.ID)
	}
	if o, replayed, err := a.PlaceOrderOnce(ctx, "old-key", validOrder); err != nil || replayed || o.ID == old.ID {
		t.Errorf("the pruned key: order %d, replayed %v, %v; want a new order", o.ID, replayed, err)
	}
	var orders int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM purchaseorder`).Scan(&orders); err != nil || orders != 3 {
		t.Errorf("%d orders (%v), want 3: pruning a key keeps its order", orders, err)
	}
}
