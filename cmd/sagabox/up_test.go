package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sagabox/sagabox/internal/pgcluster"
	"github.com/sagabox/sagabox/internal/testenv"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writers of run.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	p, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(p)
}

// startUp runs `sagabox up` as `make run` does, on free ports and dataDir, and
// returns the order and customer service URLs and a function that stops it
// (as Ctrl-C does) and returns run's error.
func startUp(t *testing.T, dataDir string, args ...string) (orderURL, customerURL string, stop func() error) {
	t.Helper()
	order, customer, payment := "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
	argv := append([]string{"up", "-data", dataDir, "-pg-port", freePort(t), "-kafka-port", freePort(t),
		"-order-addr", order, "-customer-addr", customer, "-payment-addr", payment,
		"-connectors", filepath.Join("..", "..", "debezium", "connectors"), "-jaeger", filepath.Join(dataDir, "no-jaeger")}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, argv, func(string) string { return "" }, &stdout, &stderr)
	}()
	stopped := false
	stop = func() error {
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
	return "http://" + order, "http://" + customer, stop
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
	orderURL, _, stop := startUp(t, dataDir)

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
