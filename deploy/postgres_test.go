package deploy_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/pgcluster"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/relay"
)

type pgRole struct{ password, db string }

var (
	sqlComment = regexp.MustCompile(`--[^\n]*`)
	createRole = regexp.MustCompile(`(?is)^CREATE\s+ROLE\s+(\w+)\s+(.*)$`)
	createDB   = regexp.MustCompile(`(?is)^CREATE\s+DATABASE\s+(\w+)\s+OWNER\s+(\w+)$`)
	revokeDB   = regexp.MustCompile(`(?is)^REVOKE\s+ALL\s+ON\s+DATABASE\s+(\w+)\s+FROM\s+PUBLIC$`)
	password   = regexp.MustCompile(`(?i)PASSWORD\s+'([^']*)'`)
)

// initStatements returns the statements of deploy/postgres/init.sql.
func initStatements(t *testing.T) []string {
	t.Helper()
	text := sqlComment.ReplaceAllString(readFile(t, filepath.Join(root(t), "deploy", "postgres", "init.sql")), "")
	var out []string
	for _, st := range strings.Split(text, ";") {
		if st = strings.TrimSpace(st); st != "" {
			out = append(out, st)
		}
	}
	return out
}

// initRoles parses init.sql into role → password and owned database, and
// checks each role can log in and replicate, and each database is closed to
// other roles.
func initRoles(t *testing.T) map[string]pgRole {
	t.Helper()
	roles := map[string]pgRole{}
	closed := map[string]bool{}
	defer func() {
		for role, r := range roles {
			if !closed[r.db] {
				t.Errorf("init.sql: database %s of %s is open to PUBLIC: want REVOKE ALL ON DATABASE %s FROM PUBLIC", r.db, role, r.db)
			}
		}
	}()
	for _, st := range initStatements(t) {
		if m := revokeDB.FindStringSubmatch(st); m != nil {
			closed[m[1]] = true
			continue
		}
		if m := createRole.FindStringSubmatch(st); m != nil {
			attrs := strings.Fields(strings.ToUpper(password.ReplaceAllString(m[2], "")))
			for _, want := range []string{"LOGIN", "REPLICATION"} {
				if !slices.Contains(attrs, want) {
					t.Errorf("init.sql: role %s lacks %s", m[1], want)
				}
			}
			pw := password.FindStringSubmatch(m[2])
			if pw == nil {
				t.Fatalf("init.sql: role %s has no PASSWORD", m[1])
			}
			roles[m[1]] = pgRole{password: pw[1], db: roles[m[1]].db}
		} else if m := createDB.FindStringSubmatch(st); m != nil {
			r, ok := roles[m[2]]
			if !ok {
				t.Fatalf("init.sql: database %s is owned by %s, created later or never", m[1], m[2])
			}
			r.db = m[1]
			roles[m[2]] = r
		} else {
			t.Fatalf("init.sql: unexpected statement %q", st)
		}
	}
	return roles
}

func TestInitScriptMatchesServices(t *testing.T) {
	t.Parallel()
	want := map[string]pgRole{}
	for _, a := range apps {
		want[a.role] = pgRole{password: a.password, db: a.db}
	}
	if diff := cmp.Diff(want, initRoles(t), cmp.AllowUnexported(pgRole{})); diff != "" {
		t.Errorf("init.sql roles (-want +got):\n%s", diff)
	}
}

// TestInitScriptOnPostgres runs init.sql on a private PostgreSQL server, as
// the postgres image does, then does as each role what the Docker path does
// with it: the service migrates its database (MIGRATE=true) through its
// compose DATABASE_URL, and each Debezium connector creates its filtered
// publication and its pgoutput replication slot.
func TestInitScriptOnPostgres(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := pgcluster.Start(ctx, pgcluster.Config{
		Dir: filepath.Join(t.TempDir(), "data"), Port: port,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cl.Stop(ctx); err != nil {
			t.Errorf("stop postgres: %v", err)
		}
	})

	admin, err := pgx.Connect(ctx, cl.AdminURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range initStatements(t) { // one by one: CREATE DATABASE refuses a transaction
		if _, err := admin.Exec(ctx, st); err != nil {
			t.Fatalf("init.sql: %s: %v", st, err)
		}
	}
	admin.Close(ctx)

	p := loadCompose(t)
	byDB := map[string][]relay.Connector{}
	for _, c := range loadConnectors(t) {
		byDB[c.DBName] = append(byDB[c.DBName], c)
	}
	for _, a := range apps {
		t.Run(a.service, func(t *testing.T) {
			u, err := url.Parse(env(t, service(t, p, a.service), "DATABASE_URL"))
			if err != nil {
				t.Fatal(err)
			}
			u.Host = fmt.Sprintf("127.0.0.1:%d", cl.Port())
			pool, err := pgxpool.New(ctx, u.String())
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			if err := migrations.Up(ctx, pool, a.schema()); err != nil {
				t.Fatalf("migrate %s as %s: %v", a.db, a.role, err)
			}
			for _, c := range byDB[a.db] {
				cu := *u
				cu.User = url.UserPassword(c.User, c.Password)
				conn, err := pgx.Connect(ctx, cu.String())
				if err != nil {
					t.Fatalf("%s: connect as %s: %v", c.Name, c.User, err)
				}
				var tables []string
				for table := range capturedTables(t, conn, c) {
					sch, name, _ := strings.Cut(table, ".")
					tables = append(tables, pgx.Identifier{sch, name}.Sanitize())
				}
				slices.Sort(tables)
				pub := pgx.Identifier{c.PublicationName}.Sanitize()
				steps := []string{
					"CREATE PUBLICATION " + pub + " FOR TABLE " + strings.Join(tables, ", "),
					"SELECT pg_create_logical_replication_slot('" + c.SlotName + "', 'pgoutput')",
					"SELECT pg_drop_replication_slot('" + c.SlotName + "')",
				}
				for _, q := range steps {
					if _, err := conn.Exec(ctx, q); err != nil {
						t.Errorf("%s: as %s: %s: %v", c.Name, c.User, q, err)
						break
					}
				}
				conn.Close(ctx)
			}
			for _, other := range apps {
				if other.db == a.db {
					continue
				}
				ou := *u
				ou.Path = "/" + other.db
				if conn, err := pgx.Connect(ctx, ou.String()); err == nil {
					conn.Close(ctx)
					t.Errorf("%s can connect to %s: databases must be closed to other roles", a.role, other.db)
				}
			}
		})
	}
}
