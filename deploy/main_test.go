// Package deploy_test guards the Docker path (docker-compose.yml, Dockerfile,
// deploy/, debezium/connectors/) on machines that cannot run Docker: the
// compose model is loaded with the Compose Specification's own loader, the
// connector files are loaded with the relay's loader and checked against the
// real migrated schemas and the topics the services consume, the init script
// is run on a real PostgreSQL server with what Debezium does next, the
// register script is run against a fake Connect REST API, and the
// Dockerfile's build command is run as written. One file per subject:
// compose_test.go, postgres_test.go, connectors_test.go, register_test.go,
// dockerfile_test.go.
package deploy_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/registry"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// app is one service of the registry as docker-compose.yml must run it.
type app struct {
	service  string // compose service and OTEL_SERVICE_NAME
	command  string // sagabox subcommand
	dir      string // services/<dir>
	port     string // HTTP_ADDR port, published as the same host port
	db       string // its own database ...
	role     string // ... and role (deploy/postgres/init.sql)
	password string
	schema   func() migrations.Schema
}

// apps are the registry's services: every file of the Docker path must
// agree with them.
var apps = func() []app {
	var out []app
	for _, c := range registry.Services() {
		out = append(out, app{c.DockerName(), c.Name, c.Name, strconv.Itoa(c.Port), c.Database, c.DBRole, c.DBPassword,
			func() migrations.Schema { return c.Migrations }})
	}
	return out
}()

// wantPorts is the host port table of the README's Docker section: service →
// published host ports, each mapped to the same container port and bound to
// 127.0.0.1 — the registry's services and console, and the Docker path's
// own. Postgres publishes none: nothing outside the compose network needs
// it.
var wantPorts = func() map[string][]string {
	ports := map[string][]string{
		"jaeger":     {"16686", "4317", "4318"},
		"kafka":      {"9092"},
		"connect":    {"8083"},
		"prometheus": {"9090"},
	}
	for _, c := range registry.Components() {
		if c.IsService() || c.Role == registry.Console {
			ports[c.DockerName()] = []string{strconv.Itoa(c.Port)}
		}
	}
	return ports
}()

// wantConnectors are the files of debezium/connectors (connector name =
// basename): the registry's.
var wantConnectors = func() []string {
	var out []string
	for _, c := range registry.Services() {
		out = append(out, c.Connectors...)
	}
	slices.Sort(out)
	return out
}()

func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
