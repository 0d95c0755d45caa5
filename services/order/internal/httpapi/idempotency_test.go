package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// post sends POST /orders with body and an Idempotency-Key header (none
// when key is ""), returning the status, the raw body and the headers.
func post(t *testing.T, url, key, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/orders", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0, "", nil
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, "", nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), resp.Header
}

// A request sent again with its Idempotency-Key (a client retrying after a
// timeout) gets the first order's response — same id, same saga, same
// body — marked Idempotent-Replayed, and places nothing; the key is kept
// whether it came bare or as the draft's quoted string.
func TestIdempotencyKeyReplaysTheFirstOrder(t *testing.T) {
	t.Parallel()
	srv, pool := newServer(t)
	code, first, h := post(t, srv.URL, "order-7f3a", validOrder)
	if code != http.StatusAccepted || h.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first POST = %d %s (replayed %q), want 202, not replayed", code, first, h.Get("Idempotent-Replayed"))
	}
	// The same order, written otherwise (field order, spacing).
	again := `{ "creditCardNo": "xxxx-yyyy-dddd-aaaa", "paymentDue": 4999, "customerId": 456, "quantity": 2, "itemId": 123 }`
	for _, key := range []string{"order-7f3a", `"order-7f3a"`} {
		code, body, h := post(t, srv.URL, key, again)
		if code != http.StatusAccepted || h.Get("Idempotent-Replayed") != "true" {
			t.Errorf("retry with key %s = %d (replayed %q), want 202, replayed", key, code, h.Get("Idempotent-Replayed"))
		}
		if body != first {
			t.Errorf("retry with key %s answered %s, want the first answer %s", key, body, first)
		}
		if got := h.Get("Location"); !strings.HasPrefix(got, "/orders/") {
			t.Errorf("retry Location = %q", got)
		}
	}
	if got := rowCounts(t, pool); got != [3]int{1, 1, 1} {
		t.Errorf("rows (orders, sagas, outbox) = %v, want one order", got)
	}
	// Another key, or none, places another order.
	if code, _, _ := post(t, srv.URL, "order-7f3b", validOrder); code != http.StatusAccepted {
		t.Errorf("another key: %d", code)
	}
	if code, _, _ := post(t, srv.URL, "", validOrder); code != http.StatusAccepted {
		t.Errorf("no key: %d", code)
	}
	if got := rowCounts(t, pool); got[0] != 3 {
		t.Errorf("orders = %d, want 3", got[0])
	}
}

// The key of an order with another body is refused with 422 and writes
// nothing: any field differs, the card number too.
func TestIdempotencyKeyWithAnotherBodyIs422(t *testing.T) {
	t.Parallel()
	srv, pool := newServer(t)
	if code, body, _ := post(t, srv.URL, "k-1", validOrder); code != http.StatusAccepted {
		t.Fatalf("first POST = %d %s", code, body)
	}
	for name, body := range map[string]string{
		"quantity":                     strings.Replace(validOrder, `"quantity":2`, `"quantity":3`, 1),
		"customer":                     strings.Replace(validOrder, `"customerId":456`, `"customerId":457`, 1),
		"item":                         strings.Replace(validOrder, `"itemId":123`, `"itemId":124`, 1),
		"amount":                       strings.Replace(validOrder, `"paymentDue":4999`, `"paymentDue":5000`, 1),
		"card":                         strings.Replace(validOrder, `"xxxx-yyyy-dddd-aaaa"`, `"xxxx-yyyy-dddd-bbbb"`, 1),
		"card with the same last four": strings.Replace(validOrder, `"xxxx-yyyy-dddd-aaaa"`, `"zzzz-yyyy-dddd-aaaa"`, 1),
	} {
		code, raw, _ := post(t, srv.URL, "k-1", body)
		var e struct{ Error string }
		_ = json.Unmarshal([]byte(raw), &e)
		if code != http.StatusUnprocessableEntity || !strings.Contains(e.Error, "Idempotency-Key was used for a different order") {
			t.Errorf("%s differs: %d %s, want 422", name, code, raw)
		}
	}
	if got := rowCounts(t, pool); got != [3]int{1, 1, 1} {
		t.Errorf("rows (orders, sagas, outbox) = %v, want the first order only", got)
	}
}

// Concurrent requests with one key place one order, and every one of them
// gets its response.
func TestConcurrentRequestsWithOneKeyPlaceOneOrder(t *testing.T) {
	t.Parallel()
	srv, pool := newServer(t)
	const n = 8
	bodies := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			code, body, _ := post(t, srv.URL, "same-key", validOrder)
			if code != http.StatusAccepted {
				t.Errorf("request %d: %d %s", i, code, body)
			}
			bodies[i] = body
		})
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if diff := cmp.Diff(bodies[0], bodies[i]); diff != "" {
			t.Errorf("answer %d differs from answer 0 (-0 +%d):\n%s", i, i, diff)
		}
	}
	if got := rowCounts(t, pool); got != [3]int{1, 1, 1} {
		t.Errorf("rows (orders, sagas, outbox) = %v, want one order", got)
	}
}

func TestBadIdempotencyKeyIs400(t *testing.T) {
	t.Parallel()
	srv, pool := newServer(t)
	for name, key := range map[string]string{
		"too long":         strings.Repeat("k", 256),
		"tab":              "a\tb",
		"not ASCII":        "clé",
		"space, unquoted":  "a b",
		"empty quoted":     `""`,
		"unescaped quote":  `"a"b"`,
		"bad escape":       `"a\qb"`,
		"quoted, too long": `"` + strings.Repeat("k", 256) + `"`,
	} {
		code, raw, _ := post(t, srv.URL, key, validOrder)
		if code != http.StatusBadRequest || !strings.Contains(raw, "Idempotency-Key") {
			t.Errorf("%s: %d %s, want 400 naming the header", name, code, raw)
		}
	}
	if got := rowCounts(t, pool); got != [3]int{} {
		t.Errorf("rows written by bad requests (orders, sagas, outbox) = %v", got)
	}
}
