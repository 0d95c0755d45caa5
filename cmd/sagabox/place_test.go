package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// A client that sends an order again after losing the answer places it
// once: `sagabox place` keeps its Idempotency-Key across sends. The first
// answer is lost on the way back (the order service committed the order;
// the connection drops before the client reads a byte).
func TestPlaceSendsAgainAndPlacesOnce(t *testing.T) {
	t.Parallel()
	url, _ := startOrderService(t)
	var (
		sends atomic.Int32
		mu    sync.Mutex
		keys  []string
	)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
		req, _ := http.NewRequest(r.Method, url+r.URL.Path, bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		if sends.Add(1) == 1 { // placed; the answer never arrives
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	defer proxy.Close()

	var stdout, stderr strings.Builder
	err := run(context.Background(), []string{"place", "--url", proxy.URL, filepath.Join("..", "..", "requests", "place-order.json")},
		func(string) string { return "" }, &stdout, &stderr)
	if err != nil {
		t.Fatalf("place: %v\n%s", err, stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if sends.Load() != 2 || keys[0] == "" || keys[0] != keys[1] {
		t.Fatalf("sends %d with keys %q, want 2 with one key", sends.Load(), keys)
	}
	var placed struct{ OrderID int64 }
	if err := json.Unmarshal([]byte(stdout.String()), &placed); err != nil || placed.OrderID != 1 {
		t.Fatalf("answer %q (%v), want order 1", stdout.String(), err)
	}
	if !strings.Contains(stderr.String(), "placed by an earlier send") {
		t.Errorf("stderr does not say the order was placed by the first send:\n%s", stderr.String())
	}
	// Order 2 does not exist: the second send placed nothing.
	resp, err := http.Get(url + "/orders/2")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /orders/2 = %d, want 404: the order was placed twice", resp.StatusCode)
	}
}
