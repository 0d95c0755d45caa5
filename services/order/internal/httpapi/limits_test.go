package httpapi_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/services/order/internal/httpapi"
)

// A valid order refused by a server limit — headers over MaxHeaderBytes
// (431), every request slot taken (503 with Retry-After) — writes nothing;
// the same order within the limits is placed.
func TestServerLimitsRefuseOrdersAndWriteNothing(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t, testenv.Database(t, migrations.Order()))
	log := slog.New(slog.DiscardHandler)
	entered, release := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	})
	mux.Handle("/", httpapi.Routes(newApp(t, pool, log), http.NotFoundHandler(), log, platform.AdminTokens{}))
	limits := platform.DefaultHTTPLimits()
	limits.MaxInFlight = 1
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = platform.NewHTTPServer(mux, limits)
	srv.Start()
	t.Cleanup(srv.Close)
	body, err := os.ReadFile("../../../../requests/place-order.json")
	if err != nil {
		t.Fatal(err)
	}
	post := func(header string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/orders", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Padding", header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	if resp := post(strings.Repeat("p", 32<<10)); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("order with 32 KiB of headers: %d, want 431", resp.StatusCode)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.Get(srv.URL + "/block"); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	if resp := post(""); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("order while every slot is taken: %d, Retry-After %q; want 503, 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if got := rowCounts(t, pool); got != [3]int{} {
		t.Errorf("rows written by refused orders (orders, sagas, outbox) = %v", got)
	}
	close(release)
	<-done
	if resp := post(""); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("the same order within the limits: %d, want 202", resp.StatusCode)
	}
	if got := rowCounts(t, pool); got != [3]int{1, 1, 1} {
		t.Errorf("rows (orders, sagas, outbox) = %v, want one each", got)
	}
}
