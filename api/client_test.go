package api_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sagabox/sagabox/api"
)

// The client goes to another instance only when it could not connect: a
// request that may have reached an instance (a timeout) is not sent again
// elsewhere, where it would place a second order.
func TestClientFailsOverOnlyWhenItCannotConnect(t *testing.T) {
	t.Parallel()
	var second atomic.Int32
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		second.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"orderId": 1, "sagaId": "0b7e1b1e-8a5c-4c55-9d7f-0d7c1a1e2f3a", "status": r.Header.Get("Idempotency-Key")})
	}))
	defer ok.Close()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	l, err := net.Listen("tcp", "127.0.0.1:0") // a port nothing listens on: refused
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + l.Addr().String()
	l.Close()

	hc := &http.Client{Timeout: 300 * time.Millisecond}
	c := api.Client{Name: "order", URLs: []string{refused, ok.URL}, HTTP: hc}
	p, _, err := c.PlaceOrder(context.Background(), api.PlaceOrder{}, "k1")
	if err != nil {
		t.Fatalf("refused, then up: %v", err)
	}
	if second.Load() != 1 || p.Status != "k1" {
		t.Errorf("the second instance got %d calls, key %q; want 1 with the key", second.Load(), p.Status)
	}
	c.URLs = []string{slow.URL, ok.URL}
	if _, _, err := c.PlaceOrder(context.Background(), api.PlaceOrder{}, "k2"); err == nil {
		t.Fatal("a timed-out request reported success")
	}
	if second.Load() != 1 {
		t.Errorf("a request that timed out on one instance was sent to another (%d calls)", second.Load())
	}
}

// A non-2xx answer is an *Error with its status and message; Check sees
// every answer.
func TestClientErrorsAndCheck(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":"not found"}`))
	}))
	defer srv.Close()
	var checked []int
	c := api.Client{Name: "order", URLs: []string{srv.URL},
		Check: func(method, path string, status int, _ string, _ []byte) error {
			checked = append(checked, status)
			return nil
		}}
	_, err := c.Order(context.Background(), 7)
	if api.StatusOf(err) != http.StatusNotFound || err.Error() != "404 Not Found: not found" {
		t.Errorf("error %v, want 404 Not Found: not found", err)
	}
	if len(checked) != 1 || checked[0] != 404 {
		t.Errorf("checked %v", checked)
	}
}
