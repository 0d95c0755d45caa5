package testenv

import (
	"context"
	"io/fs"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

// DatabaseAt creates a database for this test migrated with fsys up to
// goose version version, and returns a pool on it and the goose provider
// that migrates it further, up or down: how migration tests put rows of an
// older version in before migrating forward.
func DatabaseAt(t testing.TB, fsys fs.FS, version int64) (*pgxpool.Pool, *goose.Provider) {
	t.Helper()
	pool := Pool(t, Database(t, nil))
	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { db.Close() })
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys)
	if err != nil {
		t.Fatalf("testenv: migrations: %v", err)
	}
	if _, err := p.UpTo(context.Background(), version); err != nil {
		t.Fatalf("testenv: migrate to version %d: %v", version, err)
	}
	return pool, p
}
