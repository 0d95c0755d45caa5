// Package migrations holds the goose migrations of the three service
// databases. Each database gets the shared messaging tables (outbox, journal,
// parked messages) plus its own; the files are embedded so every binary can
// migrate its database at start.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed messaging order customer payment
var files embed.FS

// Order returns the migrations of the order service database.
func Order() fs.FS { return service("order") }

// Customer returns the migrations of the customer service database.
func Customer() fs.FS { return service("customer") }

// Payment returns the migrations of the payment service database.
func Payment() fs.FS { return service("payment") }

// Up applies every pending migration in fsys to the database behind pool.
// It is safe to call concurrently from several processes: goose takes a
// session advisory lock.
func Up(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	return up(ctx, db, fsys)
}

func up(ctx context.Context, db *sql.DB, fsys fs.FS) error {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("create migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	for _, r := range results {
		slog.DebugContext(ctx, "migration applied", "source", r.Source.Path, "duration", r.Duration)
	}
	return nil
}

// service merges the shared messaging migrations with one service's own.
func service(name string) fs.FS {
	return mergedFS{dirs: []string{"messaging", name}}
}

// mergedFS presents the .sql files of several embedded folders as one flat
// folder, which is what goose reads.
type mergedFS struct{ dirs []string }

func (m mergedFS) Open(name string) (fs.File, error) {
	if name == "." {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	for _, d := range m.dirs {
		f, err := files.Open(d + "/" + name)
		if err == nil {
			return f, nil
		}
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func (m mergedFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if name != "." {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	var all []fs.DirEntry
	for _, d := range m.dirs {
		entries, err := files.ReadDir(d)
		if err != nil {
			return nil, fmt.Errorf("read migrations %s: %w", d, err)
		}
		all = append(all, entries...)
	}
	return all, nil
}
