package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v4"

	"github.com/sagabox/sagabox/registry"
)

// Prometheus scrapes every compose service that serves /metrics, at the
// port it listens on; the console links the Jaeger UI the browser reaches
// and reads the services' admin API with the token they are given.
func TestComposePrometheusAndConsole(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(root(t), "deploy", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &conf); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	var got []string
	for _, sc := range conf.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			got = append(got, st.Targets...)
		}
	}
	slices.Sort(got)
	want := []string{"console:8070", "customer-service:8081", "order-service:8080", "payment-service:8082"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("scrape targets (-want +got):\n%s", diff)
	}

	p := loadCompose(t)
	prom := service(t, p, "prometheus")
	mounted := false
	for _, v := range prom.Volumes {
		mounted = mounted || v.Target == "/etc/prometheus/prometheus.yml"
	}
	if !mounted {
		t.Error("prometheus does not mount deploy/prometheus/prometheus.yml")
	}
	c := service(t, p, "console")
	for key, want := range map[string]string{
		"ORDER_URLS":       "http://order-service:8080",
		"PARTICIPANT_URLS": participantURLs(),
		"JAEGER_QUERY_URL": "http://jaeger:16686",
		"JAEGER_UI_URL":    "http://localhost:16686",
	} {
		if got := env(t, c, key); got != want {
			t.Errorf("console %s = %q, want %q", key, got, want)
		}
	}
	for _, a := range apps {
		if _, ok := service(t, p, a.service).Environment["ADMIN_TOKEN"]; !ok {
			t.Errorf("%s has no ADMIN_TOKEN: the console could not read its admin API", a.service)
		}
	}
	if _, ok := c.Environment["CONSOLE_TOKEN"]; !ok {
		t.Error("the console has no CONSOLE_TOKEN")
	}
	// The console reads with its own token, which the services take for
	// reads only; it answers for the browser's host and Prometheus'.
	const operator, reader = "operator-token-0123456789", "console-token-0123456789"
	pe := loadComposeEnv(t, []string{"ADMIN_TOKEN=" + operator, "CONSOLE_TOKEN=" + reader})
	if got := env(t, service(t, pe, "console"), "CONSOLE_TOKEN"); got != reader {
		t.Errorf("the console reads with %q, want CONSOLE_TOKEN", got)
	}
	for _, a := range apps {
		s := service(t, pe, a.service)
		if got := env(t, s, "ADMIN_READ_TOKEN"); got != "console:"+reader {
			t.Errorf("%s ADMIN_READ_TOKEN = %q, want console:<CONSOLE_TOKEN>", a.service, got)
		}
		if got := env(t, s, "ADMIN_TOKEN"); got != operator {
			t.Errorf("%s ADMIN_TOKEN = %q", a.service, got)
		}
	}
	hosts := strings.Split(env(t, c, "CONSOLE_HOSTS"), ",")
	for _, h := range []string{"localhost", "console"} {
		if !slices.Contains(hosts, h) {
			t.Errorf("CONSOLE_HOSTS %v lacks %s", hosts, h)
		}
	}
	// Without CONSOLE_TOKEN the services get no reader (an empty one,
	// which they ignore, not "console:" which they would refuse).
	for _, a := range apps {
		if v := service(t, p, a.service).Environment["ADMIN_READ_TOKEN"]; v != nil && *v != "" {
			t.Errorf("%s ADMIN_READ_TOKEN = %q without CONSOLE_TOKEN, want empty", a.service, *v)
		}
	}
}

// participantURLs is PARTICIPANT_URLS as the registry says it must be in
// Docker: each participant at its compose service name and port.
func participantURLs() string {
	var out []string
	for _, c := range registry.Services() {
		if c.Role == registry.Participant {
			out = append(out, fmt.Sprintf("%s=http://%s:%d", c.Name, c.DockerName(), c.Port))
		}
	}
	return strings.Join(out, ";")
}
