package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/internal/pgcluster"
	"github.com/sagabox/sagabox/internal/supervisor"
	"github.com/sagabox/sagabox/internal/testenv"
)

func freePort(t *testing.T) string {
	t.Helper()
	p, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(p)
}

// upRun is a running `sagabox up`.
type upRun struct {
	dataDir                  string
	pgPort                   int
	order, customer, payment string // service URLs
	console                  string // the console's URL
	relayMetrics             string // the relay's and the broker's /metrics URLs
	brokerMetrics            string
	runDir                   string // pid files of the components
	stdout, stderr           *testenv.Buffer
	stop                     func() error // as Ctrl-C does; returns run's error
}

// startUp runs `sagabox up` as `make run` does, on free ports and dataDir.
func startUp(t *testing.T, dataDir string, args ...string) (orderURL, customerURL string, stop func() error) {
	t.Helper()
	u := startUpRun(t, dataDir, args...)
	return u.order, u.customer, u.stop
}

func startUpRun(t *testing.T, dataDir string, args ...string) *upRun {
	t.Helper()
	return startUpEnv(t, dataDir, nil, args...)
}

// startUpEnv is startUpRun with env as what `sagabox up` reads through
// getenv (its children inherit the test's own environment).
func startUpEnv(t *testing.T, dataDir string, env map[string]string, args ...string) *upRun {
	t.Helper()
	order, customer, payment := "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
	console, relayMetrics, brokerMetrics := "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
	pgPort, _ := strconv.Atoi(freePort(t))
	argv := append([]string{"up", "-data", dataDir, "-pg-port", strconv.Itoa(pgPort), "-kafka-port", freePort(t),
		"-order-addr", order, "-customer-addr", customer, "-payment-addr", payment, "-console-addr", console,
		"-relay-metrics-addr", relayMetrics, "-broker-metrics-addr", brokerMetrics,
		"-connectors", filepath.Join("..", "..", "debezium", "connectors"), "-jaeger", filepath.Join(dataDir, "no-jaeger")}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr testenv.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, argv, func(k string) string { return env[k] }, &stdout, &stderr)
	}()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(60 * time.Second):
			t.Fatalf("sagabox up did not stop; stderr:\n%s", stderr.String())
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	testenv.Eventually(t, 90*time.Second, func() bool {
		return strings.Contains(stderr.String(), "sagabox is up") || len(done) > 0
	}, "sagabox up did not come up; stderr:\n%s", &stderr)
	if len(done) > 0 {
		t.Fatalf("sagabox up failed: %v\n%s", <-done, stderr.String())
	}
	return &upRun{dataDir: dataDir, pgPort: pgPort, order: "http://" + order, customer: "http://" + customer, payment: "http://" + payment,
		console: "http://" + console, relayMetrics: "http://" + relayMetrics + "/metrics",
		brokerMetrics: "http://" + brokerMetrics + "/metrics", runDir: filepath.Join(dataDir, "run"),
		stdout: &stdout, stderr: &stderr, stop: stop}
}

func getJSON(t *testing.T, url string, out any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		_ = json.Unmarshal(b, out)
	}
	return resp.StatusCode
}

// The quick start, automated: `sagabox up` starts everything, an order is
// ACCEPTED, Ctrl-C stops it all cleanly, and a second `up` on the same
// data finds the order and the customer's allocation again; -fresh empties it.
func TestUpRunsTheSystemAndKeepsItsData(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	u := startUpRun(t, dataDir)
	orderURL, stop := u.order, u.stop
	checkLocalDefaults(t, u)

	body, err := os.ReadFile(filepath.Join("..", "..", "requests", "place-order.json"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(orderURL+"/orders", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Location") != "/orders/1" {
		t.Fatalf("POST /orders = %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var order struct{ Status string }
	testenv.Eventually(t, 30*time.Second, func() bool {
		return getJSON(t, orderURL+"/orders/1", &order) == http.StatusOK && order.Status == "ACCEPTED"
	}, "order 1 not ACCEPTED: %+v", &order)
	if err := stop(); err != nil {
		t.Fatalf("sagabox up returned %v on shutdown", err)
	}

	// Restart on the same data.
	orderURL, customerURL, stop := startUp(t, dataDir)
	if code := getJSON(t, orderURL+"/orders/1", &order); code != http.StatusOK || order.Status != "ACCEPTED" {
		t.Errorf("after restart: GET /orders/1 = %d %+v", code, order)
	}
	var customer struct{ OpenLimit int64 }
	if getJSON(t, customerURL+"/customers/456", &customer); customer.OpenLimit != 50000-4999 {
		t.Errorf("after restart: openLimit = %d, want %d", customer.OpenLimit, 50000-4999)
	}
	if err := stop(); err != nil {
		t.Fatalf("sagabox up returned %v on shutdown", err)
	}

	// -fresh starts empty.
	orderURL, _, _ = startUp(t, dataDir, "-fresh")
	if code := getJSON(t, orderURL+"/orders/1", nil); code != http.StatusNotFound {
		t.Errorf("after -fresh: GET /orders/1 = %d, want 404", code)
	}
}

// checkLocalDefaults checks that what `make run` starts lets in no more than
// it must: the services listen on the loopback by default; the console's
// token reads the admin API and can act on nothing; the console answers
// only for its own host names; Postgres asks for a password over TCP, the
// superuser's in a 0600 file, and a service's role opens only its own
// database.
func checkLocalDefaults(t *testing.T, u *upRun) {
	t.Helper()
	c, err := parseUp(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for svc, addr := range c.addrs {
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("-%s-addr defaults to %s, want the loopback", svc, addr)
		}
	}
	consoleToken, err := os.ReadFile(filepath.Join(u.dataDir, "console-token"))
	if err != nil {
		t.Fatal(err)
	}
	adminToken, err := os.ReadFile(filepath.Join(u.dataDir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, url, token, host string) int {
		req, err := http.NewRequest(method, url, strings.NewReader(`{"reason":"test"}`))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(token))
		}
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	abort := u.order + "/admin/sagas/0b7e1b1e-8a5c-4c55-9d7f-0d7c1a1e2f3a/abort"
	for _, tc := range []struct {
		name, method, url, token, host string
		want                           int
	}{
		{"the console's token reads sagas", "GET", u.order + "/admin/sagas", string(consoleToken), "", 200},
		{"the console's token reads parked messages", "GET", u.payment + "/admin/parked", string(consoleToken), "", 200},
		{"the console's token cannot abort", "POST", abort, string(consoleToken), "", 403},
		{"the console's token cannot replay", "POST", u.customer + "/admin/parked/replay", string(consoleToken), "", 403},
		{"the operator's token can act", "POST", abort, string(adminToken), "", 404},
		{"the console for its host", "GET", u.console + "/healthz", "", "", 200},
		{"the console for localhost", "GET", u.console + "/healthz", "", "localhost:8070", 200},
		{"the console for another host", "GET", u.console + "/", "", "rebound.example:8070", 421},
	} {
		if got := call(tc.method, tc.url, tc.token, tc.host); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	pwFile := filepath.Join(u.dataDir, "postgres-password")
	fi, err := os.Stat(pwFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v (mode %v), want a 0600 file", pwFile, err, fi.Mode())
	}
	pw, err := pgcluster.ReadPassword(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	port := u.pgPort
	for _, tc := range []struct {
		url    string
		wantOK bool
	}{
		{pgcluster.AdminURL(port, pw, "orderdb"), true},
		{fmt.Sprintf("postgres://postgres@127.0.0.1:%d/orderdb?sslmode=disable", port), false},
		{fmt.Sprintf("postgres://orderuser:orderpw@127.0.0.1:%d/orderdb?sslmode=disable", port), true},
		{fmt.Sprintf("postgres://orderuser:orderpw@127.0.0.1:%d/customerdb?sslmode=disable", port), false},
		{fmt.Sprintf("postgres://customeruser:customerpw@127.0.0.1:%d/paymentdb?sslmode=disable", port), false},
		{fmt.Sprintf("postgres://paymentuser:paymentpw@127.0.0.1:%d/postgres?sslmode=disable", port), false},
	} {
		conn, err := pgx.Connect(context.Background(), tc.url)
		if err == nil {
			conn.Close(context.Background())
		}
		if (err == nil) != tc.wantOK {
			t.Errorf("connect %s: %v, want ok=%v", strings.Replace(tc.url, pw, "<pw>", 1), err, tc.wantOK)
		}
	}
}

// placeAndSettle places the example order and waits until it is ACCEPTED.
func placeAndSettle(t *testing.T, orderURL string, timeout time.Duration) {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "..", "requests", "place-order.json"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(orderURL+"/orders", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var placed struct{ OrderID int64 }
	_ = json.NewDecoder(resp.Body).Decode(&placed)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /orders = %d", resp.StatusCode)
	}
	var order struct{ Status string }
	testenv.Eventually(t, timeout, func() bool {
		return getJSON(t, fmt.Sprintf("%s/orders/%d", orderURL, placed.OrderID), &order) == http.StatusOK && order.Status == "ACCEPTED"
	}, "order %d not ACCEPTED: %+v", placed.OrderID, &order)
}

// One process per component: each is killed for real (SIGKILL) and comes
// back, and orders placed after each kill are ACCEPTED. Two payment
// instances share the work; while one hangs (SIGSTOP), its partitions move
// to the other.
func TestUpSupervisesOneProcessPerComponent(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	u := startUpRun(t, dataDir, "-instances", "payment=2")
	for _, name := range []string{"broker", "relay", "order-1", "customer-1", "payment-1", "payment-2"} {
		pid, err := supervisor.ReadPid(u.runDir, name)
		if err != nil || pid <= 0 {
			t.Fatalf("component %s has no pid file: %v", name, err)
		}
		// The card keys reach the order and payment services only.
		environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			t.Fatal(err)
		}
		want := strings.HasPrefix(name, "order-") || strings.HasPrefix(name, "payment-")
		var cardVars []string
		for kv := range strings.SplitSeq(string(environ), "\x00") {
			if strings.HasPrefix(kv, "CARD_KEYS") {
				cardVars = append(cardVars, kv)
			}
		}
		if wantVars := []string{"CARD_KEYS_FILE=" + filepath.Join(u.dataDir, "card-keys")}; want != cmp.Equal(cardVars, wantVars) || !want && len(cardVars) > 0 {
			t.Errorf("%s was given %v; want %v only for order and payment instances", name, cardVars, wantVars)
		}
	}
	placeAndSettle(t, u.order, 30*time.Second)
	for _, prefix := range []string{"broker     | ", "relay      | ", "order-1    | ", "payment-2  | "} {
		if !strings.Contains(u.stdout.String(), prefix) {
			t.Errorf("no output prefixed %q", prefix)
		}
	}

	for _, name := range []string{"payment-1", "order-1", "relay", "broker", "customer-1"} {
		pid, err := supervisor.ReadPid(u.runDir, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %s: %v", name, err)
		}
		testenv.Eventually(t, 30*time.Second, func() bool {
			p, err := supervisor.ReadPid(u.runDir, name)
			return err == nil && p != pid && syscall.Kill(p, 0) == nil
		}, "%s not restarted after SIGKILL", name)
		testenv.Eventually(t, 60*time.Second, func() bool { return getJSON(t, u.order+"/healthz", nil) == http.StatusOK },
			"order service unhealthy after %s was killed", name)
		placeAndSettle(t, u.order, 60*time.Second)
	}

	// payment-1 hangs: after its session times out, payment-2 takes its
	// partitions, and orders (whatever partition their saga hashes to) go on.
	pid, err := supervisor.ReadPid(u.runDir, "payment-1")
	if err != nil {
		t.Fatal(err)
	}
	assignments := func() int {
		n := 0
		for line := range strings.Lines(u.stdout.String()) {
			if strings.HasPrefix(line, "payment-2  | ") && strings.Contains(line, "partitions assigned") {
				n++
			}
		}
		return n
	}
	before := assignments()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGCONT)
	testenv.Eventually(t, 30*time.Second, func() bool { return assignments() > before },
		"payment-2 was never given payment-1's partitions")
	for range 4 {
		placeAndSettle(t, u.order, 60*time.Second)
	}
	if err := u.stop(); err != nil {
		t.Fatalf("sagabox up returned %v on shutdown", err)
	}
}
