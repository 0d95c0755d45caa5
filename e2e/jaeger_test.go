package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sagabox/sagabox/internal/pgcluster"
	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/internal/tracecli"
)

// startJaeger runs bin/jaeger with the local config on free ports and
// returns the OTLP/HTTP endpoint and the query API base URL.
func startJaeger(t *testing.T) (otlp, query string) {
	t.Helper()
	bin, err := filepath.Abs(repoFile("bin", "jaeger"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("Jaeger is not built, so its end-to-end test cannot run (scripts/build-jaeger.sh builds it; CI does): %v", err)
	}
	conf, err := os.ReadFile(repoFile("deploy", "jaeger", "local.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ports := map[string]string{}
	conf = regexp.MustCompile(`127\.0\.0\.1:(\d+)`).ReplaceAllFunc(conf, func(m []byte) []byte {
		old := strings.TrimPrefix(string(m), "127.0.0.1:")
		if _, ok := ports[old]; !ok {
			p, err := pgcluster.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			ports[old] = strconv.Itoa(p)
		}
		return []byte("127.0.0.1:" + ports[old])
	})
	path := filepath.Join(t.TempDir(), "jaeger.yaml")
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "--config", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start jaeger: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for _, p := range []string{ports["4318"], ports["16686"]} {
		testenv.Eventually(t, 30*time.Second, func() bool {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+p, 100*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err == nil
		}, "jaeger did not open port %s:\n%s", p, &out)
	}
	return "http://127.0.0.1:" + ports["4318"], "http://127.0.0.1:" + ports["16686"]
}

// The same trace, exported over OTLP by every component, is found through
// Jaeger's API by the order id and prints as a waterfall.
func TestTraceInJaeger(t *testing.T) {
	t.Parallel()
	otlp, query := startJaeger(t)
	s := startSystemEnv(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": otlp})

	p := s.placeOrder(requestFile(t, "place-order.json"))
	s.waitSettled(p.OrderID, settleTimeout)

	ctx := context.Background()
	client := &http.Client{Timeout: 5 * time.Second}
	want := []string{
		"order-service POST /orders",
		"outbox-relay credit-approval.request publish",
		"customer-service credit-approval.request process",
		"order-service credit-approval.response process",
		"outbox-relay payment.request publish",
		"payment-service payment.request process",
		"order-service payment.response process",
	}
	var (
		tr     tracecli.Trace
		gotOps []string
	)
	testenv.Eventually(t, 30*time.Second, func() bool {
		ids, err := tracecli.FindByTag(ctx, client, query, "order-service", "order.id", fmt.Sprint(p.OrderID), time.Hour)
		if err != nil || len(ids) != 1 {
			return false
		}
		if tr, err = tracecli.Fetch(ctx, client, query, ids[0]); err != nil {
			return false
		}
		gotOps = gotOps[:0]
		for _, sp := range tr.Spans {
			gotOps = append(gotOps, tr.ServiceName(sp)+" "+sp.OperationName)
		}
		for _, w := range want {
			if !slices.Contains(gotOps, w) {
				return false
			}
		}
		return true
	}, "trace of order %d incomplete in Jaeger; spans: %v", p.OrderID, &gotOps)

	var buf bytes.Buffer
	if err := tracecli.Waterfall(&buf, tr); err != nil {
		t.Fatal(err)
	}
	t.Logf("trace of order %d:\n%s", p.OrderID, buf.String())
	for _, w := range want {
		if op := w[strings.Index(w, " ")+1:]; !strings.Contains(buf.String(), op) {
			t.Errorf("waterfall misses %q", op)
		}
	}
}
