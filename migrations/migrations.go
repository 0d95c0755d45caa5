// Package migrations holds the goose migrations of the three service
// databases. Each database gets the shared messaging tables (outbox, journal,
// parked messages) plus its own, after the schema of the libraries it runs
// on — pkg/saga's tables for the orchestrating order service, pkg/
// participant's barrier for the customer and payment services — each of
// which is versioned in a goose table of its own. The files are embedded so
// every binary can migrate its database at start.
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

	"github.com/sagabox/sagabox/pkg/participant"
	"github.com/sagabox/sagabox/pkg/saga"
)

//go:embed messaging order customer payment
var files embed.FS

// Set is one sequence of goose migrations with its own version table.
type Set struct {
	Table string // goose's version table
	FS    fs.FS
}

// Schema is a database's migrations: sets applied in order.
type Schema []Set

// ServiceTable is the version table of a service's own migrations (goose's
// default, which the databases have always used).
const ServiceTable = "goose_db_version"

// Order returns the migrations of the order service database: pkg/saga's,
// then its own.
func Order() Schema {
	return Schema{{saga.MigrationsTable, saga.Migrations()}, Service("order")}
}

// Customer returns the migrations of the customer service database:
// pkg/participant's, then its own.
func Customer() Schema {
	return Schema{{participant.MigrationsTable, participant.Migrations()}, Service("customer")}
}

// Payment returns the migrations of the payment service database:
// pkg/participant's, then its own.
func Payment() Schema {
	return Schema{{participant.MigrationsTable, participant.Migrations()}, Service("payment")}
}

// Up applies every pending migration of s to the database behind pool, set
// by set. It is safe to call concurrently from several processes: goose
// takes a session advisory lock.
func Up(ctx context.Context, pool *pgxpool.Pool, s Schema) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	for _, set := range s {
		p, err := Provider(db, set)
		if err != nil {
			return err
		}
		results, err := p.Up(ctx)
		if err != nil {
			return fmt.Errorf("apply migrations (%s): %w", set.Table, err)
		}
		for _, r := range results {
			slog.DebugContext(ctx, "migration applied", "table", set.Table, "source", r.Source.Path, "duration", r.Duration)
		}
	}
	return nil
}

// Provider returns the goose provider of set on db, locked against
// concurrent migrations.
func Provider(db *sql.DB, set Set) (*goose.Provider, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("create migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, set.FS, goose.WithSessionLocker(locker),
		goose.WithTableName(set.Table))
	if err != nil {
		return nil, fmt.Errorf("load migrations (%s): %w", set.Table, err)
	}
	return p, nil
}

// Service is a service's own migrations: the shared messaging tables' and
// those of its folder, in one sequence.
func Service(name string) Set {
	return Set{ServiceTable, mergedFS{dirs: []string{"messaging", name}}}
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
