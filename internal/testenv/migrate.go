package testenv

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/sagabox/sagabox/migrations"
)

// DatabaseAt creates a database for this test migrated with schema's
// library sets, then its last set (the service's own) up to goose version
// version, and returns a pool on it and the goose provider that migrates
// that set further, up or down: how migration tests put rows of an older
// version in before migrating forward.
func DatabaseAt(t testing.TB, schema migrations.Schema, version int64) (*pgxpool.Pool, *goose.Provider) {
	t.Helper()
	pool := Pool(t, Database(t, schema[:len(schema)-1]))
	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { db.Close() })
	p, err := migrations.Provider(db, schema[len(schema)-1])
	if err != nil {
		t.Fatalf("testenv: migrations: %v", err)
	}
	if _, err := p.UpTo(context.Background(), version); err != nil {
		t.Fatalf("testenv: migrate to version %d: %v", version, err)
	}
	return pool, p
}
