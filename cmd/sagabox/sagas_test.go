package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/services/order"
)

const cliToken = "cli-test-token-0123456789"

// startOrderService runs the real order service (no participants: its
// sagas wait at credit-approval) and returns its URL and its broker.
func startOrderService(t *testing.T) (url, broker string) {
	t.Helper()
	broker, _ = testenv.Kafka(t)
	addr := "127.0.0.1:" + freePort(t)
	env := map[string]string{
		"DATABASE_URL":  testenv.Database(t, migrations.Order()),
		"KAFKA_BROKERS": broker,
		"HTTP_ADDR":     addr,
		"MIGRATE":       "false",
		"ADMIN_TOKEN":   "ops:" + cliToken,
		// A reply for a saga that never comes is parked after this wait.
		"SAGA_EARLY_REPLY_WAIT": "1s",
	}
	env["CARD_KEYS"], _ = testenv.CardKeys(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- order.Run(ctx, func(k string) string { return env[k] }, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("order service: %v", err)
		}
	})
	url = "http://" + addr
	testenv.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get(url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "order service never became healthy")
	return url, broker
}

func placeOrder(t *testing.T, url string) string {
	t.Helper()
	body := `{"itemId":1,"quantity":1,"customerId":456,"paymentDue":4999,"creditCardNo":"1111-2222-3333-4444"}`
	resp, err := http.Post(url+"/orders", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct {
		SagaID string `json:"sagaId"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || p.SagaID == "" {
		t.Fatalf("POST /orders: %d %v", resp.StatusCode, err)
	}
	return p.SagaID
}

func TestSagasCommand(t *testing.T) {
	t.Parallel()
	url, _ := startOrderService(t)
	older := placeOrder(t, url)
	newer := placeOrder(t, url)
	env := map[string]string{"ORDER_URL": url, "ADMIN_TOKEN": "ops:" + cliToken}
	sagas := func(env map[string]string, args ...string) (string, error) {
		t.Helper()
		var stdout, stderr strings.Builder
		err := run(context.Background(), append([]string{"sagas"}, args...), func(k string) string { return env[k] }, &stdout, &stderr)
		return stdout.String(), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := sagas(env, args...)
		if err != nil {
			t.Fatalf("sagabox sagas %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	fails := func(env map[string]string, wantErr string, args ...string) {
		t.Helper()
		out, err := sagas(env, args...)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("sagabox sagas %s: err = %v, output %q; want an error containing %q", strings.Join(args, " "), err, out, wantErr)
		}
	}

	// Authorisation: no token, a wrong one; --url and --token override the environment.
	fails(map[string]string{"ORDER_URL": url}, "401 Unauthorized: missing or invalid bearer token (set ADMIN_TOKEN or --token)", "list")
	fails(env, "401", "list", "--token", "wrong-token-0123456789")
	if out, err := sagas(nil, "list", "--url", url, "--token", cliToken); err != nil || !strings.Contains(out, "2 sagas") {
		t.Errorf("list with --url and --token: %q %v", out, err)
	}

	out := must("list")
	if !regexp.MustCompile(`(?s)ID\s+TYPE\s+STATUS\s+STEP.*` + newer + `\s+order-placement\s+STARTED\s+credit-approval\s+STARTED\s+0.*` + older).MatchString(out) {
		t.Errorf("list, newest first:\n%s", out)
	}
	out = must("list", "--status", "STARTED", "--limit", "1")
	m := regexp.MustCompile(`more: sagabox sagas list --status STARTED --limit 1 --after (\S+)`).FindStringSubmatch(out)
	if !strings.Contains(out, newer) || strings.Contains(out, older) || m == nil {
		t.Fatalf("first page of one:\n%s", out)
	}
	if out := must("list", "--status", "STARTED", "--limit", "1", "--after", m[1]); !strings.Contains(out, older) || strings.Contains(out, "more:") {
		t.Errorf("second page:\n%s", out)
	}
	if out := must("list", "--stuck"); !strings.Contains(out, "0 sagas") {
		t.Errorf("list --stuck with nothing stuck:\n%s", out)
	}
	fails(env, "400", "list", "--status", "RUNNING")

	// The actions, flags before or after the id.
	if out := must("retry", older); !strings.Contains(out, "STARTED, step credit-approval STARTED, attempt 1, version 1") {
		t.Errorf("retry: %q", out)
	}
	fails(env, "--reason is required", "abort", older)
	if out := must("abort", older, "--reason", "customer called"); !strings.Contains(out, "ABORTING, step credit-approval COMPENSATING") {
		t.Errorf("abort: %q", out)
	}
	fails(env, "409 Conflict", "abort", "--reason", "again", older)
	fails(env, "--step and --reason are required", "compensate", older, "--reason", "x")
	fails(env, "400", "compensate", older, "--step", "shipping", "--reason", "x")
	if out := must("compensate", "--step", "credit-approval", "--reason", "released by hand", older); !strings.Contains(out, "ABORTED") {
		t.Errorf("compensate: %q", out)
	}

	out = must("show", older)
	t.Logf("sagabox sagas show:\n%s", out)
	for _, want := range []string{
		"status   ABORTED since", "order 1",
		"credit-approval  - → STARTED",
		"operator retry by ops",
		`operator abort by ops: "customer called"`,
		`COMPENSATING → COMPENSATED  ABORTED`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show does not contain %q:\n%s", want, out)
		}
	}
	var detail struct {
		History []struct {
			Cause struct{ Actor, Action, Reason string }
		}
	}
	if err := json.Unmarshal([]byte(must("show", older, "--json")), &detail); err != nil || len(detail.History) != 4 ||
		detail.History[3].Cause.Action != "compensate" || detail.History[3].Cause.Reason != "released by hand" {
		t.Errorf("show --json: %+v %v", detail, err)
	}
	fails(env, "not a saga ID", "show", "not-a-uuid")
	fails(env, "404", "show", "00000000-0000-0000-0000-000000000000")
	fails(env, "want exactly one saga ID", "show")
	fails(env, "unknown command", "frobnicate")
}

func TestTokenFromEnv(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                        "",
		"bare-token":              "bare-token",
		"ops:tok-1":               "tok-1",
		"ops:tok-1, ci:tok-2":     "tok-1",
		" tok-0 ,ops:tok-1":       "tok-0",
		"ops:tok:with:colons,x:y": "tok:with:colons",
	} {
		if got := tokenFromEnv(in); got != want {
			t.Errorf("tokenFromEnv(%q) = %q, want %q", in, got, want)
		}
	}
}
