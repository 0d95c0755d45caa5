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
	"testing"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// app is one of the three services as docker-compose.yml must run it.
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

var apps = []app{
	{"order-service", "order", "order", "8080", "orderdb", "orderuser", "orderpw", migrations.Order},
	{"customer-service", "customer", "customer", "8081", "customerdb", "customeruser", "customerpw", migrations.Customer},
	{"payment-service", "payment", "payment", "8082", "paymentdb", "paymentuser", "paymentpw", migrations.Payment},
}

// wantPorts is the host port table of the README's Docker section: service →
// published host ports, each mapped to the same container port and bound to
// 127.0.0.1. Postgres publishes none: nothing outside the compose network
// needs it.
var wantPorts = map[string][]string{
	"order-service":    {"8080"},
	"customer-service": {"8081"},
	"payment-service":  {"8082"},
	"jaeger":           {"16686", "4317", "4318"},
	"kafka":            {"9092"},
	"connect":          {"8083"},
	"console":          {"8070"},
	"prometheus":       {"9090"},
}

// wantConnectors are the files of debezium/connectors (connector name = basename).
var wantConnectors = []string{"customer-outbox", "order-outbox", "order-sagastate", "payment-outbox"}

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
