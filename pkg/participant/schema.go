package participant

import (
	"embed"
	"io/fs"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// MigrationsTable is the goose version table of Migrations: the barrier's
// schema is versioned apart from the service's own.
const MigrationsTable = "participant_db_version"

// Migrations returns the goose migrations of the barrier table
// participant_step, to apply to the participant's database (with
// MigrationsTable as their version table) before its own.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the embedded directory exists: cannot happen
	}
	return sub
}
