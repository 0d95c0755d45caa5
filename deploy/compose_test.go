package deploy_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/google/go-cmp/cmp"
)

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	return loadComposeEnv(t, nil) // interpolate with an empty environment: what a fresh shell gets
}

// loadComposeEnv loads docker-compose.yml interpolated with env
// ("KEY=value" entries).
func loadComposeEnv(t *testing.T, env []string) *types.Project {
	t.Helper()
	dir := root(t)
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(dir, "docker-compose.yml")},
		cli.WithWorkingDirectory(dir),
		cli.WithEnv(env),
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
	want := []string{"card-keys", "connect", "console", "customer-service", "jaeger", "kafka", "order-service", "payment-service", "postgres", "prometheus", "register-connectors"}
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
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes port %s on %q: bind it to 127.0.0.1, not to every interface", name, port.Published, port.HostIP)
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
	connectors := len(loadConnectors(t))
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
	checkNamedVolume(t, p, s, "/var/lib/postgresql/data")
}

// checkNamedVolume checks that service s keeps target in a named volume of
// the project, so its data outlives the container (`docker compose down -v`
// removes it).
func checkNamedVolume(t *testing.T, p *types.Project, s types.ServiceConfig, target string) {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Target == target {
			if _, ok := p.Volumes[v.Source]; v.Type != types.VolumeTypeVolume || !ok {
				t.Errorf("%s: %s is mounted from %s %q, want a named volume of the project", s.Name, target, v.Type, v.Source)
			}
			return
		}
	}
	t.Errorf("%s: %s is not a volume: its data would vanish with the container", s.Name, target)
}

// TestComposeKafka: the broker keeps its log in a volume, not in /tmp of the
// container layer (the image's default).
func TestComposeKafka(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	k := service(t, p, "kafka")
	dir := env(t, k, "KAFKA_LOG_DIRS")
	if dir != "/var/lib/kafka/data" {
		t.Errorf("KAFKA_LOG_DIRS = %q, want /var/lib/kafka/data", dir)
	}
	checkNamedVolume(t, p, k, dir)
}

// TestComposeConnectHealth: Connect is healthy when GET /health answers 200
// (KIP-1017), which it does only once the worker can take connector configs.
func TestComposeConnectHealth(t *testing.T) {
	t.Parallel()
	hc := service(t, loadCompose(t), "connect").HealthCheck
	if hc == nil || !slices.Contains(hc.Test, "http://localhost:8083/health") || !slices.Contains(hc.Test, "-f") && !slices.Contains(hc.Test, "-fsS") {
		t.Errorf("connect healthcheck %+v: want curl -f http://localhost:8083/health", hc)
	}
}

// TestGitAttributes: shell scripts are checked out with LF line endings,
// also by Git for Windows (a CRLF register.sh fails on "set -eu\r").
func TestGitAttributes(t *testing.T) {
	t.Parallel()
	attrs := readFile(t, filepath.Join(root(t), ".gitattributes"))
	if !slices.Contains(strings.Split(attrs, "\n"), "*.sh text eol=lf") {
		t.Errorf(".gitattributes has no line \"*.sh text eol=lf\":\n%s", attrs)
	}
	if strings.Contains(readFile(t, filepath.Join(root(t), "deploy", "connect", "register.sh")), "\r") {
		t.Error("deploy/connect/register.sh contains a carriage return")
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
	if diff := cmp.Diff([]string{"console", "customer-service", "order-service", "payment-service"}, builds); diff != "" {
		t.Errorf("services built from source (-want +got):\n%s", diff)
	}
	first := service(t, p, apps[0].service)
	for _, name := range builds {
		s := service(t, p, name)
		if s.Build == nil {
			continue
		}
		if s.Build.Context != dir || s.Build.Dockerfile != "Dockerfile" {
			t.Errorf("%s builds %s with %s, want the repository root with ./Dockerfile", name, s.Build.Context, s.Build.Dockerfile)
		}
		if s.Image != first.Image || s.Image == "" {
			t.Errorf("%s image %q, want the same image %q for all of them", name, s.Image, first.Image)
		}
	}
}
