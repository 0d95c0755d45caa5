package console

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func newTestServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The console answers only for its host names: a page of another site that
// reaches it through DNS rebinding names its own host and is refused.
func TestConsoleAnswersOnlyForItsHosts(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(func(k string) string { return map[string]string{"HTTP_ADDR": "127.0.0.1:8070"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	h := newTestServer(t, cfg).Routes(http.NotFoundHandler())
	for host, want := range map[string]int{
		"localhost:8070": http.StatusOK, "127.0.0.1:8070": http.StatusOK, "[::1]:8070": http.StatusOK, "LOCALHOST": http.StatusOK,
		"attacker.example:8070": http.StatusMisdirectedRequest, "attacker.example": http.StatusMisdirectedRequest,
		"192.168.1.5:8070": http.StatusMisdirectedRequest, "": http.StatusMisdirectedRequest,
	} {
		req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		req.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != want {
			t.Errorf("Host %q: %d, want %d", host, w.Code, want)
		}
	}
	cfg, err = LoadConfig(func(k string) string { return map[string]string{"CONSOLE_HOSTS": "console, Dash.Example"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Hosts, ","); got != "console,dash.example" {
		t.Errorf("CONSOLE_HOSTS gave %q", got)
	}
	if _, err := LoadConfig(func(k string) string { return map[string]string{"CONSOLE_HOSTS": "http://x/"}[k] }); err == nil {
		t.Error("a URL in CONSOLE_HOSTS was accepted")
	}
}

// The place-order page gives each form a fresh idempotency key, and the
// console sends the form's key with the order: the form sent twice is one
// order.
func TestPlaceFormCarriesItsIdempotencyKey(t *testing.T) {
	t.Parallel()
	keys := make(chan string, 4)
	order := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys <- r.Header.Get("Idempotency-Key")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"orderId":7,"sagaId":"0b7e1b1e-8a5c-4c55-9d7f-0d7c1a1e2f3a","status":"CREATED"}`))
	}))
	defer order.Close()
	cfg := Config{OrderURLs: []string{order.URL}, Hosts: []string{"example.com"}}
	h := newTestServer(t, cfg).Routes(http.NotFoundHandler())
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/place", nil))
	page := w.Body.String()
	const marker = `name="idempotencyKey" value="`
	if n := strings.Count(page, marker); n != 3 {
		t.Fatalf("%d forms with a key, want 3", n)
	}
	key := page[strings.Index(page, marker)+len(marker):]
	key = key[:strings.IndexByte(key, '"')]
	form := url.Values{"itemId": {"1"}, "quantity": {"1"}, "customerId": {"456"}, "paymentDue": {"10"},
		"creditCardNo": {"1111"}, "idempotencyKey": {key}}
	for range 2 {
		req := httptest.NewRequest(http.MethodPost, "/orders", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusSeeOther || !strings.Contains(w.Header().Get("Location"), "/sagas/") {
			t.Fatalf("POST /orders: %d %s", w.Code, w.Header().Get("Location"))
		}
		if got := <-keys; got != key {
			t.Errorf("sent Idempotency-Key %q, want the form's %q", got, key)
		}
	}
}
