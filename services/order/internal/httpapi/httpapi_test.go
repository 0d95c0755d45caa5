package httpapi_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/services/order/internal/app"
	"github.com/sagabox/sagabox/services/order/internal/httpapi"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newServer(t *testing.T) (*httptest.Server, *pgxpool.Pool) {
	t.Helper()
	pool := testenv.Pool(t, testenv.Database(t, migrations.Order()))
	log := slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(httpapi.Routes(newApp(t, pool, log), http.NotFoundHandler(), log, platform.AdminTokens{}))
	t.Cleanup(srv.Close)
	return srv, pool
}

// newApp returns the order app over pool with the default settings and a
// fresh card key.
func newApp(t *testing.T, pool *pgxpool.Pool, log *slog.Logger) *app.App {
	t.Helper()
	s := app.DefaultSettings()
	_, s.CardKeys = testenv.CardKeys(t)
	a, err := app.New(pool, log, s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func rowCounts(t *testing.T, pool *pgxpool.Pool) [3]int {
	t.Helper()
	var n [3]int
	err := pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM purchaseorder), (SELECT count(*) FROM sagastate), (SELECT count(*) FROM outboxevent)`).
		Scan(&n[0], &n[1], &n[2])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func send(t *testing.T, method, url, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: response is not a JSON object: %v", method, url, err)
	}
	return resp.StatusCode, out, resp.Header
}

// validOrder is a valid body of POST /orders.
const validOrder = `{"itemId":123,"quantity":2,"customerId":456,"paymentDue":4999,"creditCardNo":"xxxx-yyyy-dddd-aaaa"}`

// badInputs are requests the order API refuses, each with its status and
// what its error says.
var badInputs = []struct {
	name, method, path, body string
	want                     int
	errContains              string
}{
	{"malformed JSON", "POST", "/orders", `{"itemId":`, 400, "malformed"},
	{"not an object", "POST", "/orders", `[1,2]`, 400, "malformed"},
	{"wrong type", "POST", "/orders", `{"itemId":"abc","quantity":2,"customerId":456,"paymentDue":4999,"creditCardNo":"x"}`, 400, "itemId"},
	{"unknown field", "POST", "/orders", strings.Replace(validOrder, `"itemId"`, `"discount":5,"itemId"`, 1), 400, "discount"},
	{"missing field", "POST", "/orders", `{"itemId":123,"quantity":2,"paymentDue":4999,"creditCardNo":"x"}`, 400, "customerId"},
	{"empty body", "POST", "/orders", ``, 400, "malformed"},
	{"zero quantity", "POST", "/orders", strings.Replace(validOrder, `"quantity":2`, `"quantity":0`, 1), 400, "quantity"},
	{"negative quantity", "POST", "/orders", strings.Replace(validOrder, `"quantity":2`, `"quantity":-1`, 1), 400, "quantity"},
	{"zero paymentDue", "POST", "/orders", strings.Replace(validOrder, `"paymentDue":4999`, `"paymentDue":0`, 1), 400, "paymentDue"},
	{"negative paymentDue", "POST", "/orders", strings.Replace(validOrder, `"paymentDue":4999`, `"paymentDue":-5`, 1), 400, "paymentDue"},
	{"fractional paymentDue", "POST", "/orders", strings.Replace(validOrder, `"paymentDue":4999`, `"paymentDue":49.99`, 1), 400, "paymentDue"},
	{"empty card", "POST", "/orders", strings.Replace(validOrder, `"xxxx-yyyy-dddd-aaaa"`, `""`, 1), 400, "creditCardNo"},
	{"blank card", "POST", "/orders", strings.Replace(validOrder, `"xxxx-yyyy-dddd-aaaa"`, `"   "`, 1), 400, "creditCardNo"},
	{"card over 64 characters", "POST", "/orders", strings.Replace(validOrder, `"xxxx-yyyy-dddd-aaaa"`, `"`+strings.Repeat("4", 65)+`"`, 1), 400, "creditCardNo is longer than 64"},
	{"quantity over an integer column", "POST", "/orders", strings.Replace(validOrder, `"quantity":2`, `"quantity":2147483648`, 1), 400, "quantity must be 1 to 2147483647"},
	{"quantity over int64", "POST", "/orders", strings.Replace(validOrder, `"quantity":2`, `"quantity":9223372036854775808`, 1), 400, "quantity"},
	{"paymentDue over bigint", "POST", "/orders", strings.Replace(validOrder, `"paymentDue":4999`, `"paymentDue":9223372036854775808`, 1), 400, "paymentDue"},
	{"zero customer", "POST", "/orders", strings.Replace(validOrder, `"customerId":456`, `"customerId":0`, 1), 400, "customerId"},
	{"negative item", "POST", "/orders", strings.Replace(validOrder, `"itemId":123`, `"itemId":-3`, 1), 400, "itemId"},
	{"NUL in the card", "POST", "/orders", strings.Replace(validOrder, `"xxxx-yyyy-dddd-aaaa"`, `"4444\u00004444"`, 1), 400, "creditCardNo must be printable"},
	{"control character in the card", "POST", "/orders", strings.Replace(validOrder, `"xxxx-yyyy-dddd-aaaa"`, `"4444\u001b4444"`, 1), 400, "creditCardNo must be printable"},
	{"invalid UTF-8 in the card", "POST", "/orders", strings.Replace(validOrder, `"xxxx-yyyy-dddd-aaaa"`, "\"4444\xff4444\"", 1), 400, "not UTF-8"},
	{"trailing data", "POST", "/orders", validOrder + `{}`, 400, "after the JSON"},
	{"body over 64 KiB", "POST", "/orders", `{"creditCardNo":"` + strings.Repeat("1", 70<<10) + `"}`, 413, "larger than"},
	{"unknown order", "GET", "/orders/999", "", 404, "not found"},
	{"non-numeric order id", "GET", "/orders/abc", "", 404, "not found"},
	{"unknown saga", "GET", "/sagas/0b7e1b1e-8a5c-4c55-9d7f-0d7c1a1e2f3a", "", 404, "not found"},
	{"malformed saga id", "GET", "/sagas/nope", "", 404, "not found"},
	{"unknown route", "GET", "/nope", "", 404, "no such route"},
	{"wrong method", "DELETE", "/orders/1", "", 405, "method"},
}

func TestBadInputIsRefusedAndWritesNothing(t *testing.T) {
	t.Parallel()
	srv, pool := newServer(t)
	for _, tc := range badInputs {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := send(t, tc.method, srv.URL+tc.path, tc.body)
			if code != tc.want {
				t.Errorf("status = %d, want %d (body %v)", code, tc.want, body)
			}
			msg, _ := body["error"].(string)
			if !strings.Contains(msg, tc.errContains) {
				t.Errorf("error = %q, want it to mention %q", msg, tc.errContains)
			}
		})
	}
	if got := rowCounts(t, pool); got != [3]int{} {
		t.Errorf("rows written by bad requests (orders, sagas, outbox) = %v", got)
	}
}

func TestPlaceOrderWritesOrderSagaAndRequestTogether(t *testing.T) {
	t.Parallel()
	srv, pool := newServer(t)
	body, err := os.ReadFile("../../../../requests/place-order.json")
	if err != nil {
		t.Fatal(err)
	}
	code, resp, hdr := send(t, "POST", srv.URL+"/orders", string(body))
	if code != http.StatusAccepted {
		t.Fatalf("status = %d, body %v", code, resp)
	}
	if resp["orderId"] != float64(1) || resp["status"] != "CREATED" || resp["sagaId"] == "" {
		t.Errorf("response = %v", resp)
	}
	if got := hdr.Get("Location"); got != "/orders/1" {
		t.Errorf("Location = %q", got)
	}
	if got := rowCounts(t, pool); got != [3]int{1, 1, 1} {
		t.Errorf("rows (orders, sagas, outbox) = %v, want one each", got)
	}

	code, order, _ := send(t, "GET", srv.URL+"/orders/1", "")
	if code != http.StatusOK {
		t.Fatalf("GET /orders/1 = %d", code)
	}
	saga := order["saga"].(map[string]any)
	want := map[string]any{
		"id": resp["sagaId"], "type": "order-placement", "status": "STARTED", "currentStep": "credit-approval",
		"stepStatus": map[string]any{"credit-approval": "STARTED"}, "version": float64(0), "attempt": float64(0),
		"definitionVersion": float64(1),
		"waits":             map[string]any{"credit-approval": map[string]any{"attempt": float64(0), "deadline": saga["deadline"]}},
	}
	if saga["deadline"] == nil || saga["statusSince"] != saga["createdAt"] {
		t.Errorf("saga deadline %v, status since %v, created %v: want a deadline, in STARTED since creation",
			saga["deadline"], saga["statusSince"], saga["createdAt"])
	}
	for _, k := range []string{"createdAt", "updatedAt", "statusSince", "deadline"} {
		delete(saga, k)
	}
	if diff := cmp.Diff(want, saga); diff != "" {
		t.Errorf("saga (-want +got):\n%s", diff)
	}
	for k, v := range map[string]any{"orderId": float64(1), "customerId": float64(456), "itemId": float64(123),
		"quantity": float64(2), "paymentDue": float64(4999), "status": "CREATED", "creditCardLast4": "aaaa"} {
		if order[k] != v {
			t.Errorf("order[%q] = %v, want %v", k, order[k], v)
		}
	}
	_, sagaResp, _ := send(t, "GET", srv.URL+"/sagas/"+resp["sagaId"].(string), "")
	var sealed string
	if err := pool.QueryRow(context.Background(), `SELECT credit_card_sealed FROM purchaseorder`).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	for _, r := range []map[string]any{order, sagaResp} {
		b, _ := json.Marshal(r)
		if strings.Contains(string(b), "xxxx-yyyy-dddd-aaaa") || strings.Contains(string(b), "xxxxyyyyddddaaaa") {
			t.Errorf("card number returned in full: %s", b)
		}
		if strings.Contains(string(b), sealed[len("v1.test."):]) {
			t.Errorf("sealed card returned: %s", b)
		}
	}
}
