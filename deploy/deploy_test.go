// Package deploy_test guards the Docker path (docker-compose.yml, Dockerfile,
// deploy/, debezium/connectors/) on machines that cannot run Docker: the
// compose model is loaded with the Compose Specification's own loader, the
// connector files are checked against the real migrated schemas, the init
// script is run on a real PostgreSQL server with what Debezium does next, the
// register script is run against a fake Connect REST API, and the Dockerfile's
// build command is run as written.
package deploy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/pgcluster"
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
	schema   func() fs.FS
}

var apps = []app{
	{"order-service", "order", "order", "8080", "orderdb", "orderuser", "orderpw", migrations.Order},
	{"customer-service", "customer", "customer", "8081", "customerdb", "customeruser", "customerpw", migrations.Customer},
	{"payment-service", "payment", "payment", "8082", "paymentdb", "paymentuser", "paymentpw", migrations.Payment},
}

// wantPorts is the host port table of the README's Docker section: service →
// published host ports, each mapped to the same container port.
var wantPorts = map[string][]string{
	"order-service":    {"8080"},
	"customer-service": {"8081"},
	"payment-service":  {"8082"},
	"jaeger":           {"16686", "4317", "4318"},
	"kafka":            {"9092"},
	"connect":          {"8083"},
	"postgres":         {"5432"},
}

// wantConnectors are the files of debezium/connectors (connector name = basename).
var wantConnectors = []string{"customer-outbox", "order-outbox", "order-sagastate", "payment-outbox"}

// Topics: what the routing must yield from the aggregatetype values each
// service writes, and what the services consume.
var (
	// aggregatetype values written to each database's outbox.
	wantAggregateTypes = map[string][]string{
		"orderdb":    {"credit-approval", "payment"}, // the saga step names
		"customerdb": {"credit-approval"},
		"paymentdb":  {"payment"},
	}
	wantConsumed = map[string][]string{
		"order":    {"credit-approval.response", "payment.response"},
		"customer": {"credit-approval.request"},
		"payment":  {"payment.request"},
	}
)

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

// --- docker-compose.yml -----------------------------------------------------

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	dir := root(t)
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(dir, "docker-compose.yml")},
		cli.WithWorkingDirectory(dir),
		cli.WithEnv(nil), // interpolate with an empty environment: what a fresh shell gets
		cli.WithInterpolation(true),
		cli.WithResolvedPaths(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml has no service %q", name)
	}
	return s
}

func env(t *testing.T, s types.ServiceConfig, key string) string {
	t.Helper()
	v, ok := s.Environment[key]
	if !ok || v == nil {
		t.Fatalf("service %s: environment %s is not set", s.Name, key)
	}
	return *v
}

func TestComposeServices(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	var got []string
	for name := range p.Services {
		got = append(got, name)
	}
	slices.Sort(got)
	want := []string{"connect", "customer-service", "jaeger", "kafka", "order-service", "payment-service", "postgres", "register-connectors"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
}

// kafkaInternalListener returns the address the kafka service advertises on
// the compose network: the listener named by KAFKA_INTER_BROKER_LISTENER_NAME,
// whose host must be the service name.
func kafkaInternalListener(t *testing.T, p *types.Project) string {
	t.Helper()
	k := service(t, p, "kafka")
	name := env(t, k, "KAFKA_INTER_BROKER_LISTENER_NAME")
	for _, l := range strings.Split(env(t, k, "KAFKA_ADVERTISED_LISTENERS"), ",") {
		n, addr, ok := strings.Cut(strings.TrimSpace(l), "://")
		if ok && n == name {
			if host, _, _ := net.SplitHostPort(addr); host != "kafka" {
				t.Fatalf("kafka advertises %s for listener %s, want host kafka (the service name)", addr, name)
			}
			return addr
		}
	}
	t.Fatalf("kafka: no advertised listener %s in KAFKA_ADVERTISED_LISTENERS", name)
	return ""
}

func TestComposeAppServices(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	broker := kafkaInternalListener(t, p)
	jaegerTargets := map[uint32]bool{}
	for _, port := range service(t, p, "jaeger").Ports {
		jaegerTargets[port.Target] = true
	}
	for _, a := range apps {
		s := service(t, p, a.service)
		t.Run(a.service, func(t *testing.T) {
			if diff := cmp.Diff([]string{a.command}, []string(s.Command)); diff != "" {
				t.Errorf("command (-want +got):\n%s", diff)
			}

			u, err := url.Parse(env(t, s, "DATABASE_URL"))
			if err != nil {
				t.Fatalf("DATABASE_URL: %v", err)
			}
			pw, _ := u.User.Password()
			got := fmt.Sprintf("%s %s:%s@%s db=%s", u.Scheme, u.User.Username(), pw, u.Host, strings.TrimPrefix(u.Path, "/"))
			want := fmt.Sprintf("postgres %s:%s@postgres:5432 db=%s", a.role, a.password, a.db)
			if got != want {
				t.Errorf("DATABASE_URL = %s, want %s (its own database and role on service postgres)", got, want)
			}

			if got := env(t, s, "KAFKA_BROKERS"); got != broker {
				t.Errorf("KAFKA_BROKERS = %q, want the kafka service's internal listener %q", got, broker)
			}

			ep, err := url.Parse(env(t, s, "OTEL_EXPORTER_OTLP_ENDPOINT"))
			if err != nil {
				t.Fatalf("OTEL_EXPORTER_OTLP_ENDPOINT: %v", err)
			}
			if ep.Scheme != "http" || ep.Hostname() != "jaeger" || ep.Port() != "4318" {
				t.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT = %s, want http://jaeger:4318 (OTLP/HTTP)", ep)
			}
			if !jaegerTargets[4318] {
				t.Errorf("jaeger does not expose 4318, which %s exports to", a.service)
			}
			if got := env(t, s, "OTEL_SERVICE_NAME"); got != a.service {
				t.Errorf("OTEL_SERVICE_NAME = %q, want %q", got, a.service)
			}
			if got := env(t, s, "MIGRATE"); got != "true" {
				t.Errorf("MIGRATE = %q, want true: the tables must exist before the connectors are registered", got)
			}

			if _, port, _ := net.SplitHostPort(env(t, s, "HTTP_ADDR")); port != a.port {
				t.Errorf("HTTP_ADDR port = %q, want %s", port, a.port)
			}
			if s.HealthCheck == nil || !strings.Contains(strings.Join(s.HealthCheck.Test, " "), ":"+a.port+"/healthz") {
				t.Errorf("healthcheck must call GET /healthz on port %s, got %v", a.port, s.HealthCheck)
			}
			for _, dep := range []string{"postgres", "kafka"} {
				if d, ok := s.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
					t.Errorf("depends_on %s: want condition service_healthy, got %+v", dep, d)
				}
			}
		})
	}

	c := service(t, p, "connect")
	if got := env(t, c, "BOOTSTRAP_SERVERS"); got != broker {
		t.Errorf("connect BOOTSTRAP_SERVERS = %q, want %q", got, broker)
	}
	for _, key := range []string{"GROUP_ID", "CONFIG_STORAGE_TOPIC", "OFFSET_STORAGE_TOPIC", "STATUS_STORAGE_TOPIC"} {
		env(t, c, key)
	}
}

func TestComposePorts(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	got := map[string][]string{}
	for name, s := range p.Services {
		for _, port := range s.Ports {
			if port.Published != fmt.Sprint(port.Target) {
				t.Errorf("%s publishes container port %d as %s: the README promises the same number", name, port.Target, port.Published)
			}
			got[name] = append(got[name], port.Published)
		}
	}
	if diff := cmp.Diff(wantPorts, got); diff != "" {
		t.Errorf("published ports (-want +got):\n%s", diff)
	}
}

func TestComposeHealthDependencies(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	for name, s := range p.Services {
		for dep, d := range s.DependsOn {
			target, ok := p.Services[dep]
			if !ok {
				t.Errorf("%s depends on unknown service %s", name, dep)
				continue
			}
			if d.Condition != types.ServiceConditionHealthy {
				continue
			}
			if hc := target.HealthCheck; hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] == "NONE" {
				t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
			}
		}
	}
	reg := service(t, p, "register-connectors")
	for _, dep := range []string{"connect", "order-service", "customer-service", "payment-service"} {
		if d, ok := reg.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("register-connectors: depends_on %s must be service_healthy (Connect up, tables migrated), got %+v", dep, d)
		}
	}
	con := service(t, p, "connect")
	for _, dep := range []string{"kafka", "postgres"} {
		if d, ok := con.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("connect: depends_on %s must be service_healthy, got %+v", dep, d)
		}
	}
}

// pgSettings returns the -c name=value settings of the postgres command.
func pgSettings(cmd []string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(cmd); i++ {
		arg := cmd[i]
		switch {
		case arg == "-c" && i+1 < len(cmd):
			i++
			arg = cmd[i]
		case strings.HasPrefix(arg, "-c"):
			arg = strings.TrimPrefix(arg, "-c")
		case strings.HasPrefix(arg, "--"):
			arg = strings.TrimPrefix(arg, "--")
		default:
			continue
		}
		if k, v, ok := strings.Cut(arg, "="); ok {
			out[k] = v
		}
	}
	return out
}

func TestComposePostgres(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	s := service(t, p, "postgres")
	m := regexp.MustCompile(`^postgres:(\d+)`).FindStringSubmatch(s.Image)
	if m == nil || len(m[1]) < 2 || m[1] < "16" {
		t.Errorf("postgres image = %q, want the official postgres:16 or newer", s.Image)
	}
	set := pgSettings(s.Command)
	if set["wal_level"] != "logical" {
		t.Errorf("postgres command %v: want -c wal_level=logical (Debezium's pgoutput)", s.Command)
	}
	connectors := len(readConnectors(t))
	for _, key := range []string{"max_replication_slots", "max_wal_senders"} {
		var n int
		if _, err := fmt.Sscan(set[key], &n); err != nil || n < connectors {
			t.Errorf("postgres %s = %q, want at least %d (one per connector)", key, set[key], connectors)
		}
	}
	init := filepath.Join(root(t), "deploy", "postgres", "init.sql")
	mounted := false
	for _, v := range s.Volumes {
		if v.Source == init && strings.HasPrefix(v.Target, "/docker-entrypoint-initdb.d/") {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("deploy/postgres/init.sql is not mounted into /docker-entrypoint-initdb.d/: %+v", s.Volumes)
	}
	if hc := s.HealthCheck; hc == nil || !slices.Contains(hc.Test, "pg_isready") {
		t.Errorf("postgres healthcheck must use pg_isready, got %+v", hc)
	}
}

func TestComposeRegisterConnectors(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	dir := root(t)
	s := service(t, p, "register-connectors")

	var connectorsTarget, scriptTarget string
	for _, v := range s.Volumes {
		switch v.Source {
		case filepath.Join(dir, "debezium", "connectors"):
			connectorsTarget = v.Target
			if !v.ReadOnly {
				t.Errorf("debezium/connectors must be mounted read-only")
			}
		case filepath.Join(dir, "deploy", "connect", "register.sh"):
			scriptTarget = v.Target
		}
	}
	if connectorsTarget == "" || scriptTarget == "" {
		t.Fatalf("register-connectors must mount debezium/connectors and deploy/connect/register.sh, got %+v", s.Volumes)
	}
	run := append(slices.Clone([]string(s.Entrypoint)), s.Command...)
	if !slices.Contains(run, scriptTarget) {
		t.Errorf("register-connectors runs %v, not the mounted script %s", run, scriptTarget)
	}
	if got := env(t, s, "CONNECTORS_DIR"); got != connectorsTarget {
		t.Errorf("CONNECTORS_DIR = %q, want the mount point %q", got, connectorsTarget)
	}
	if u, err := url.Parse(env(t, s, "CONNECT_URL")); err != nil || u.Hostname() != "connect" || u.Port() != "8083" {
		t.Errorf("CONNECT_URL = %q, want http://connect:8083", env(t, s, "CONNECT_URL"))
	}
	if s.Restart != "" && s.Restart != types.RestartPolicyNo {
		t.Errorf("register-connectors is one-shot: restart = %q", s.Restart)
	}

	// The script registers whatever is in the directory: it iterates *.json
	// and PUTs each config, and names no connector itself.
	script := readFile(t, filepath.Join(dir, "deploy", "connect", "register.sh"))
	for _, want := range []string{`"$CONNECTORS_DIR"/*.json`, "-X PUT", `/connectors/$name/config`, "set -eu"} {
		if !strings.Contains(script, want) {
			t.Errorf("register.sh does not contain %q", want)
		}
	}
	for _, name := range wantConnectors {
		if strings.Contains(script, name) {
			t.Errorf("register.sh names connector %s: it must iterate the directory", name)
		}
	}
	if !strings.HasPrefix(script, "#!/bin/sh\n") {
		t.Errorf("register.sh must be a POSIX sh script (#!/bin/sh)")
	}
}

func TestComposeOneBuild(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	dir := root(t)
	var builds []string
	for name, s := range p.Services {
		if s.Build != nil {
			builds = append(builds, name)
		}
	}
	slices.Sort(builds)
	if diff := cmp.Diff([]string{"customer-service", "order-service", "payment-service"}, builds); diff != "" {
		t.Errorf("services built from source (-want +got):\n%s", diff)
	}
	first := service(t, p, apps[0].service)
	for _, a := range apps {
		s := service(t, p, a.service)
		if s.Build == nil {
			continue
		}
		if s.Build.Context != dir || s.Build.Dockerfile != "Dockerfile" {
			t.Errorf("%s builds %s with %s, want the repository root with ./Dockerfile", a.service, s.Build.Context, s.Build.Dockerfile)
		}
		if s.Image != first.Image || s.Image == "" {
			t.Errorf("%s image %q, want the same image %q for all three", a.service, s.Image, first.Image)
		}
	}
}

// --- deploy/postgres/init.sql ------------------------------------------------

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

// --- debezium/connectors -----------------------------------------------------

type connector struct {
	name string
	cfg  map[string]string
}

func (c connector) get(key, def string) string {
	if v, ok := c.cfg[key]; ok {
		return v
	}
	return def
}

// eventRouter returns the prefix of the connector's EventRouter transform
// ("transforms.NAME."), or "" when it has none.
func (c connector) eventRouter() string {
	for _, tr := range strings.Split(c.cfg["transforms"], ",") {
		tr = strings.TrimSpace(tr)
		if tr != "" && c.cfg["transforms."+tr+".type"] == "io.debezium.transforms.outbox.EventRouter" {
			return "transforms." + tr + "."
		}
	}
	return ""
}

func (c connector) tables() []string {
	var out []string
	for _, tb := range strings.Split(c.cfg["table.include.list"], ",") {
		if tb = strings.TrimSpace(tb); tb != "" {
			out = append(out, tb)
		}
	}
	return out
}

// routerColumns returns every column the EventRouter reads, with Debezium's
// defaults for the options the file leaves out.
func (c connector) routerColumns() []string {
	pre := c.eventRouter()
	cols := []string{
		c.get(pre+"table.field.event.id", "id"),
		c.get(pre+"table.field.event.key", "aggregateid"),
		c.get(pre+"table.field.event.payload", "payload"),
		c.get(pre+"route.by.field", "aggregatetype"),
	}
	if v := c.cfg[pre+"table.field.event.timestamp"]; v != "" {
		cols = append(cols, v)
	}
	for _, f := range strings.Split(c.cfg[pre+"table.fields.additional.placement"], ",") {
		if col, _, ok := strings.Cut(strings.TrimSpace(f), ":"); ok {
			cols = append(cols, col)
		}
	}
	return cols
}

func readConnectors(t *testing.T) []connector {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root(t), "debezium", "connectors", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []connector
	for _, f := range files {
		var raw map[string]any
		if err := json.Unmarshal([]byte(readFile(t, f)), &raw); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		c := connector{name: strings.TrimSuffix(filepath.Base(f), ".json"), cfg: map[string]string{}}
		for k, v := range raw {
			s, ok := v.(string)
			if !ok {
				t.Errorf("%s: %s is %T; Kafka Connect configs are string maps", f, k, v)
				continue
			}
			c.cfg[k] = s
		}
		out = append(out, c)
	}
	return out
}

func TestConnectorFiles(t *testing.T) {
	t.Parallel()
	cs := readConnectors(t)
	var names []string
	for _, c := range cs {
		names = append(names, c.name)
	}
	if diff := cmp.Diff(wantConnectors, names); diff != "" {
		t.Errorf("debezium/connectors/*.json (-want +got):\n%s", diff)
	}

	p := loadCompose(t)
	roles := initRoles(t)
	slots, pubs, prefixes := map[string]string{}, map[string]string{}, map[string]string{}
	validName := regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	for _, c := range cs {
		t.Run(c.name, func(t *testing.T) {
			if got := c.cfg["connector.class"]; got != "io.debezium.connector.postgresql.PostgresConnector" {
				t.Errorf("connector.class = %q", got)
			}
			if host := c.cfg["database.hostname"]; host != "postgres" || c.cfg["database.port"] != "5432" {
				t.Errorf("database %s:%s, want postgres:5432 (the compose service)", host, c.cfg["database.port"])
			}
			if _, ok := p.Services[c.cfg["database.hostname"]]; !ok {
				t.Errorf("database.hostname %q is not a compose service", c.cfg["database.hostname"])
			}
			user := c.cfg["database.user"]
			r, ok := roles[user]
			switch {
			case !ok:
				t.Errorf("database.user %q is not created by init.sql", user)
			case r.db != c.cfg["database.dbname"]:
				t.Errorf("database.dbname %q, but init.sql gives %s the database %q", c.cfg["database.dbname"], user, r.db)
			case r.password != c.cfg["database.password"]:
				t.Errorf("database.password of %s differs from init.sql", user)
			}
			if c.cfg["plugin.name"] != "pgoutput" {
				t.Errorf("plugin.name = %q, want pgoutput (built into PostgreSQL)", c.cfg["plugin.name"])
			}
			if len(c.tables()) == 0 {
				t.Errorf("table.include.list is empty")
			}
			for _, key := range []string{"slot.name", "publication.name", "topic.prefix"} {
				v := c.cfg[key]
				if key != "topic.prefix" && !validName.MatchString(v) {
					t.Errorf("%s = %q: want a PostgreSQL name of [a-z0-9_]", key, v)
				}
				if v == "" {
					t.Errorf("%s is empty", key)
				}
			}
		})
		for key, seen := range map[string]map[string]string{"slot.name": slots, "publication.name": pubs, "topic.prefix": prefixes} {
			v := c.cfg[key]
			if other, dup := seen[v]; dup {
				t.Errorf("%s %q is used by both %s and %s", key, v, other, c.name)
			}
			seen[v] = c.name
		}
	}
}

// TestConnectorColumns checks, on freshly migrated databases, that every table
// a connector captures and every column its EventRouter reads exist.
func TestConnectorColumns(t *testing.T) {
	t.Parallel()
	schemas := map[string]func() fs.FS{}
	for _, a := range apps {
		schemas[a.db] = a.schema
	}
	for _, c := range readConnectors(t) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			schema, ok := schemas[c.cfg["database.dbname"]]
			if !ok {
				t.Fatalf("database.dbname %q is no service's database", c.cfg["database.dbname"])
			}
			ctx := context.Background()
			pool := testenv.Pool(t, testenv.Database(t, schema()))
			for _, table := range c.tables() {
				sch, name, ok := strings.Cut(table, ".")
				if !ok {
					t.Errorf("table.include.list entry %q: want schema.table", table)
					continue
				}
				rows, err := pool.Query(ctx, `SELECT column_name FROM information_schema.columns
					WHERE table_schema = $1 AND table_name = $2`, sch, name)
				if err != nil {
					t.Fatal(err)
				}
				cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					t.Fatal(err)
				}
				if len(cols) == 0 {
					t.Errorf("table %s does not exist in %s's migrations", table, c.cfg["database.dbname"])
					continue
				}
				if c.eventRouter() == "" {
					continue
				}
				for _, col := range c.routerColumns() {
					if !slices.Contains(cols, col) {
						t.Errorf("EventRouter column %q is not a column of %s (%v)", col, table, cols)
					}
				}
			}
		})
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
	byDB := map[string][]connector{}
	for _, c := range readConnectors(t) {
		byDB[c.cfg["database.dbname"]] = append(byDB[c.cfg["database.dbname"]], c)
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
				cu.User = url.UserPassword(c.cfg["database.user"], c.cfg["database.password"])
				conn, err := pgx.Connect(ctx, cu.String())
				if err != nil {
					t.Fatalf("%s: connect as %s: %v", c.name, c.cfg["database.user"], err)
				}
				var tables []string
				for _, tb := range c.tables() {
					sch, name, _ := strings.Cut(tb, ".")
					tables = append(tables, pgx.Identifier{sch, name}.Sanitize())
				}
				pub := pgx.Identifier{c.cfg["publication.name"]}.Sanitize()
				steps := []string{
					"CREATE PUBLICATION " + pub + " FOR TABLE " + strings.Join(tables, ", "),
					"SELECT pg_create_logical_replication_slot('" + c.cfg["slot.name"] + "', 'pgoutput')",
					"SELECT pg_drop_replication_slot('" + c.cfg["slot.name"] + "')",
				}
				for _, q := range steps {
					if _, err := conn.Exec(ctx, q); err != nil {
						t.Errorf("%s: as %s: %s: %v", c.name, c.cfg["database.user"], q, err)
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

// --- topics -----------------------------------------------------------------

// sourceMatches returns the first submatch of re in the non-test Go files of
// services/<dir>.
func sourceMatches(t *testing.T, dir string, re *regexp.Regexp) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(root(t), "services", dir), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(readFile(t, path), -1) {
			out = append(out, m[1])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func TestTopics(t *testing.T) {
	t.Parallel()
	// What the code writes and consumes, read from the sources the test
	// cannot import (they are internal to each service).
	stepName := regexp.MustCompile(`\bStep[A-Z]\w*\s*=\s*"([^"]+)"`)
	// An outbox.Event literal or a participant reply built with saga.Reply.
	aggregateType := regexp.MustCompile(`(?:AggregateType:\s*|saga\.Reply\()"([^"]+)"`)
	requestTopic := regexp.MustCompile(`\bRequestTopic\s*=\s*"([^"]+)"`)
	fromCode := map[string][]string{
		"orderdb":    sourceMatches(t, "order", stepName),
		"customerdb": sourceMatches(t, "customer", aggregateType),
		"paymentdb":  sourceMatches(t, "payment", aggregateType),
	}
	if diff := cmp.Diff(wantAggregateTypes, fromCode); diff != "" {
		t.Errorf("aggregatetype values in the service sources (-test table +code):\n%s", diff)
	}
	consumedFromCode := map[string][]string{
		"customer": sourceMatches(t, "customer", requestTopic),
		"payment":  sourceMatches(t, "payment", requestTopic),
	}
	for _, step := range fromCode["orderdb"] { // app.ReplyTopics: "<step>.response"
		consumedFromCode["order"] = append(consumedFromCode["order"], step+".response")
	}
	if diff := cmp.Diff(wantConsumed, consumedFromCode); diff != "" {
		t.Errorf("consumed topics in the service sources (-test table +code):\n%s", diff)
	}

	// What the connectors yield.
	produced := map[string]string{} // topic → connector
	for _, c := range readConnectors(t) {
		pre := c.eventRouter()
		if pre == "" {
			for _, tb := range c.tables() { // Debezium's default: <topic.prefix>.<schema>.<table>
				produced[c.cfg["topic.prefix"]+"."+tb] = c.name
			}
			continue
		}
		if re := c.get(pre+"route.topic.regex", "(?<routedByValue>.*)"); re != "(?<routedByValue>.*)" {
			t.Fatalf("%s: route.topic.regex %q: the test only knows the default", c.name, re)
		}
		repl := c.get(pre+"route.topic.replacement", "outbox.event.${routedByValue}")
		values, ok := wantAggregateTypes[c.cfg["database.dbname"]]
		if !ok {
			t.Errorf("%s: no aggregatetype values known for database %s", c.name, c.cfg["database.dbname"])
		}
		for _, v := range values {
			topic := strings.ReplaceAll(repl, "${routedByValue}", v)
			if other, dup := produced[topic]; dup {
				t.Errorf("topic %s is produced by both %s and %s", topic, other, c.name)
			}
			produced[topic] = c.name
		}
	}
	var consumed, outbox []string
	for _, topics := range wantConsumed {
		consumed = append(consumed, topics...)
	}
	for topic, c := range produced {
		if c != "order-sagastate" {
			outbox = append(outbox, topic)
		}
	}
	slices.Sort(consumed)
	slices.Sort(outbox)
	if diff := cmp.Diff(consumed, outbox); diff != "" {
		t.Errorf("outbox topics vs consumed topics (-consumed +produced):\n%s", diff)
	}
	if produced["sagas.public.sagastate"] != "order-sagastate" {
		t.Errorf("order-sagastate should yield sagas.public.sagastate; produced: %v", produced)
	}
}

// --- deploy/connect/register.sh ----------------------------------------------

// fakeConnect is the part of Kafka Connect's REST API register.sh uses.
type fakeConnect struct {
	conflicts   int // answer the first PUTs with 409, as a rebalancing worker does
	putStatus   int
	state       string
	mu          sync.Mutex
	registered  map[string]json.RawMessage
	contentType map[string]string
}

func newFakeConnect(putStatus int, state string) *fakeConnect {
	return &fakeConnect{putStatus: putStatus, state: state, registered: map[string]json.RawMessage{}, contentType: map[string]string{}}
}

func (f *fakeConnect) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/connectors":
		io.WriteString(w, "[]")
	case r.Method == http.MethodPut && len(parts) == 3 && parts[0] == "connectors" && parts[2] == "config":
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		if f.conflicts > 0 {
			f.conflicts--
			f.mu.Unlock()
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"error_code":409,"message":"Cannot complete request momentarily due to stale configuration"}`)
			return
		}
		f.registered[parts[1]] = body
		f.contentType[parts[1]] = r.Header.Get("Content-Type")
		f.mu.Unlock()
		w.WriteHeader(f.putStatus)
		if f.putStatus >= 300 {
			io.WriteString(w, `{"error_code":400,"message":"Connector configuration is invalid"}`)
			return
		}
		fmt.Fprintf(w, `{"name":%q,"config":{},"tasks":[],"type":"source"}`, parts[1])
	case r.Method == http.MethodGet && len(parts) == 3 && parts[2] == "status":
		fmt.Fprintf(w, `{"name":%q,"connector":{"state":"RUNNING","worker_id":"connect:8083"},
			"tasks":[{"id":0,"state":%q,"worker_id":"connect:8083"}],"type":"source"}`, parts[1], f.state)
	default:
		http.NotFound(w, r)
	}
}

func runRegister(t *testing.T, f *fakeConnect) (stderr string, err error) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed: the register script needs it (the Connect image has it)")
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	dir := root(t)
	cmd := exec.Command("sh", filepath.Join(dir, "deploy", "connect", "register.sh"))
	cmd.Env = append(os.Environ(),
		"CONNECT_URL="+srv.URL,
		"CONNECTORS_DIR="+filepath.Join(dir, "debezium", "connectors"),
		"TIMEOUT_SECONDS=4",
		"TMPDIR="+t.TempDir(),
	)
	var buf strings.Builder
	cmd.Stderr = &buf
	err = cmd.Run()
	return buf.String(), err
}

func TestRegisterScript(t *testing.T) {
	t.Parallel()
	f := newFakeConnect(http.StatusCreated, "RUNNING")
	f.conflicts = 1
	stderr, err := runRegister(t, f)
	if err != nil {
		t.Fatalf("register.sh: %v\n%s", err, stderr)
	}
	for _, c := range readConnectors(t) {
		body, ok := f.registered[c.name]
		if !ok {
			t.Errorf("connector %s was not PUT", c.name)
			continue
		}
		var got map[string]string
		if err := json.Unmarshal(body, &got); err != nil {
			t.Errorf("%s: body is not a config map: %v", c.name, err)
		}
		if diff := cmp.Diff(c.cfg, got); diff != "" {
			t.Errorf("%s: PUT body differs from the file (-file +sent):\n%s", c.name, diff)
		}
		if ct := f.contentType[c.name]; ct != "application/json" {
			t.Errorf("%s: Content-Type %q", c.name, ct)
		}
	}
	if len(f.registered) != len(wantConnectors) {
		t.Errorf("registered %d connectors, want %d", len(f.registered), len(wantConnectors))
	}
}

func TestRegisterScriptFailsLoudly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, want string
		putStatus  int
		state      string
	}{
		{"rejected config", "HTTP 400", http.StatusBadRequest, "RUNNING"},
		{"failed task", "FAILED", http.StatusOK, "FAILED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stderr, err := runRegister(t, newFakeConnect(tc.putStatus, tc.state))
			if err == nil {
				t.Fatalf("register.sh succeeded; stderr:\n%s", stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr does not say %q:\n%s", tc.want, stderr)
			}
		})
	}
}

// --- Dockerfile ----------------------------------------------------------------

// dockerfileLines returns the Dockerfile's instructions with continuation
// lines joined and comments dropped.
func dockerfileLines(t *testing.T) []string {
	t.Helper()
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(readFile(t, filepath.Join(root(t), "Dockerfile"))))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if more, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(more + " ")
			continue
		}
		cur.WriteString(line)
		out = append(out, cur.String())
		cur.Reset()
	}
	return out
}

// shellWords splits s like sh does for plain words and quotes.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// dockerBuild returns the environment assignments and the go arguments of
// the Dockerfile's `go build` command.
func dockerBuild(t *testing.T) (envs, args []string) {
	t.Helper()
	for _, line := range dockerfileLines(t) {
		if !strings.HasPrefix(line, "RUN ") || !strings.Contains(line, "go build") {
			continue
		}
		words := shellWords(strings.TrimPrefix(line, "RUN "))
		i := 0
		for ; i < len(words) && strings.HasPrefix(words[i], "--"); i++ { // RUN --mount=...
		}
		for ; i < len(words) && words[i] != "go"; i++ {
			if !strings.Contains(words[i], "=") {
				t.Fatalf("Dockerfile: cannot follow %q before go build in %q", words[i], line)
			}
			envs = append(envs, words[i])
		}
		for i++; i < len(words) && words[i] != "&&" && words[i] != ";"; i++ {
			args = append(args, words[i])
		}
		if len(args) == 0 || args[0] != "build" {
			t.Fatalf("Dockerfile: no go build in %q", line)
		}
		return envs, args
	}
	t.Fatal("Dockerfile has no RUN ... go build")
	return nil, nil
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	lines := dockerfileLines(t)
	var froms []string
	for _, l := range lines {
		if f, ok := strings.CutPrefix(l, "FROM "); ok {
			froms = append(froms, strings.Fields(f)[0])
		}
	}
	if len(froms) < 2 {
		t.Fatalf("Dockerfile stages %v: want a multi-stage build", froms)
	}
	// The builder's Go is the one go.mod asks for.
	goMod := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(readFile(t, filepath.Join(root(t), "go.mod")))
	if goMod == nil || !strings.HasPrefix(froms[0], "golang:"+goMod[1]) {
		t.Errorf("builder image %s, want golang:%s (go.mod)", froms[0], goMod)
	}
	// The compose healthchecks run wget inside the service containers: the
	// final image must have one (alpine's busybox; distroless has none).
	if !strings.HasPrefix(froms[len(froms)-1], "alpine:") {
		t.Errorf("final image %s: the compose healthchecks need busybox wget (alpine)", froms[len(froms)-1])
	}
	text := strings.Join(lines, "\n")
	// Module download is its own layer, before the sources are copied.
	modCopy := strings.Index(text, "COPY go.mod go.sum")
	download := strings.Index(text, "go mod download")
	srcCopy := strings.Index(text, "COPY . .")
	if modCopy < 0 || download < modCopy || srcCopy < download {
		t.Errorf("Dockerfile: want COPY go.mod go.sum, then go mod download, then COPY . .")
	}
	user := regexp.MustCompile(`(?m)^USER (\S+)`).FindAllStringSubmatch(text, -1)
	if len(user) == 0 || strings.HasPrefix(user[len(user)-1][1], "root") || strings.HasPrefix(user[len(user)-1][1], "0") {
		t.Errorf("the final image must run as a non-root USER, got %v", user)
	}
	_, args := dockerBuild(t)
	out := args[slices.Index(args, "-o")+1]
	if !strings.Contains(text, "COPY --from=") || !strings.Contains(text, out) {
		t.Errorf("the final stage does not copy the built binary %s", out)
	}
	if !regexp.MustCompile(`(?m)^ENTRYPOINT \[".*sagabox"\]`).MatchString(text) {
		t.Errorf("ENTRYPOINT must be the sagabox binary")
	}
}

func TestDockerignoreKeepsSources(t *testing.T) {
	t.Parallel()
	var patterns []string
	for _, l := range strings.Split(readFile(t, filepath.Join(root(t), ".dockerignore")), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	for _, want := range []string{".git", "bin", ".data"} {
		if !slices.Contains(patterns, want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
	for _, keep := range []string{"go.mod", "go.sum", "cmd", "internal", "migrations", "pkg", "services"} {
		for _, p := range patterns {
			if ok, _ := filepath.Match(strings.TrimPrefix(p, "**/"), keep); ok {
				t.Errorf(".dockerignore pattern %q excludes %s, which the build needs", p, keep)
			}
		}
	}
}

// TestDockerfileBuild runs the Dockerfile's go build command as written (the
// output path aside) and checks the binary runs every service subcommand
// docker-compose.yml uses.
func TestDockerfileBuild(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	envs, args := dockerBuild(t)
	if !slices.Contains(envs, "CGO_ENABLED=0") {
		t.Errorf("go build env %v: want CGO_ENABLED=0 (static binary for the final image)", envs)
	}
	if !slices.Contains(args, "-trimpath") {
		t.Errorf("go build %v: want -trimpath", args)
	}
	if pkg := args[len(args)-1]; pkg != "./cmd/sagabox" {
		t.Errorf("go build builds %s, want ./cmd/sagabox", pkg)
	}
	o := slices.Index(args, "-o")
	if o < 0 || o+1 >= len(args) {
		t.Fatalf("go build %v: no -o", args)
	}
	bin := filepath.Join(t.TempDir(), "sagabox")
	args = slices.Clone(args)
	args[o+1] = bin

	cmd := exec.Command("go", args...)
	cmd.Dir = root(t)
	cmd.Env = append(os.Environ(), envs...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	out, err := exec.Command(bin, "help").CombinedOutput()
	if err != nil {
		t.Fatalf("sagabox help: %v\n%s", err, out)
	}
	p := loadCompose(t)
	for _, a := range apps {
		cmdName := service(t, p, a.service).Command[0]
		if !regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(cmdName) + `\s`).Match(out) {
			t.Errorf("sagabox help does not list %q (the command of %s):\n%s", cmdName, a.service, out)
		}
	}
}
