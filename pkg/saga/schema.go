package saga

import (
	"embed"
	"io/fs"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// MigrationsTable is the goose version table of Migrations: the saga
// tables' schema is versioned apart from the service's own.
const MigrationsTable = "saga_db_version"

// Migrations returns the goose migrations of the tables sagastate and
// sagastate_history, to apply to the orchestrating service's database (with
// MigrationsTable as their version table) before its own.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the embedded directory exists: cannot happen
	}
	return sub
}
