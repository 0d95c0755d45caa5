// Package migrations holds the goose migrations of the service databases.
// Each database gets the shared messaging tables (outbox, journal, parked
// messages) plus its own, after the schema of the library it runs on —
// pkg/saga's tables for an orchestrator (Orchestrator), pkg/participant's
// barrier for a participant (Participant) — which is versioned in a goose
// table of its own. The files are embedded so every binary can migrate its
// database at start; a service kept elsewhere passes its own files.
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

// Order returns the migrations of the order service database.
func Order() Schema { return Orchestrator(own("order")) }

// Customer returns the migrations of the customer service database.
func Customer() Schema { return Participant(own("customer")) }

// Payment returns the migrations of the payment service database.
func Payment() Schema { return Participant(own("payment")) }

// Orchestrator returns the schema of a service that runs sagas: pkg/saga's
// tables, then the messaging tables and the service's own migrations in
// ownFS (nil: none).
func Orchestrator(ownFS fs.FS) Schema {
	return Schema{{saga.MigrationsTable, saga.Migrations()}, WithMessaging(ownFS)}
}

// Participant returns the schema of a service that serves steps:
// pkg/participant's barrier, then the messaging tables and the service's
// own migrations in ownFS (nil: none).
func Participant(ownFS fs.FS) Schema {
	return Schema{{participant.MigrationsTable, participant.Migrations()}, WithMessaging(ownFS)}
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

// Service is the own migrations of the service called name, kept in this
// package: WithMessaging of its folder.
func Service(name string) Set { return WithMessaging(own(name)) }

// WithMessaging is a service's own migrations in ownFS (.sql files at its
// root; nil: none) after the shared messaging tables (outbox, journal,
// parked messages), in one goose sequence versioned in ServiceTable. The
// messaging files take versions 1, 4, 5, 7 and 11, a service's own the
// others (goose refuses a version used twice).
func WithMessaging(ownFS fs.FS) Set {
	m := mergedFS{mustSub("messaging")}
	if ownFS != nil {
		m = append(m, ownFS)
	}
	return Set{ServiceTable, m}
}

func own(name string) fs.FS { return mustSub(name) }

// mustSub is folder dir of the embedded files; fs.Sub fails only on an
// invalid path, and dir is one of this package's constants.
func mustSub(dir string) fs.FS {
	sub, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // dir is a constant of this package
	}
	return sub
}

// mergedFS presents the .sql files of several folders as one flat folder,
// which is what goose reads.
type mergedFS []fs.FS

func (m mergedFS) Open(name string) (fs.File, error) {
	if name == "." {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	for _, f := range m {
		file, err := f.Open(name)
		if err == nil {
			return file, nil
		}
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func (m mergedFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if name != "." {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	var all []fs.DirEntry
	for _, f := range m {
		entries, err := fs.ReadDir(f, ".")
		if err != nil {
			return nil, fmt.Errorf("read migrations: %w", err)
		}
		all = append(all, entries...)
	}
	return all, nil
}
