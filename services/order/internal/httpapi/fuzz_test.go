package httpapi_test

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/sagabox/sagabox/pkg/card"
	"github.com/sagabox/sagabox/services/order/internal/httpapi"
)

var orderFields = []string{"itemId", "quantity", "customerId", "paymentDue", "creditCardNo"}

// FuzzPlaceOrderBody feeds arbitrary bodies to the decoding and validation
// of POST /orders. An accepted body is UTF-8, one JSON object of the five
// fields (names matched as encoding/json does) with a valid order whose
// every field fits its column — quantity an integer, positive ids and
// amount, a card number of printable text no longer than 64 characters;
// a refused one gets 400 or 413 — never a 500 — and its error does not
// quote the card number.
func FuzzPlaceOrderBody(f *testing.F) {
	f.Add([]byte(validOrder))
	for _, tc := range badInputs {
		if tc.method == http.MethodPost && tc.path == "/orders" {
			f.Add([]byte(tc.body))
		}
	}
	requests, _ := filepath.Glob("../../../../requests/*.json")
	for _, r := range requests {
		b, err := os.ReadFile(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		in, err := httpapi.ReadPlaceOrder(w, httptest.NewRequest(http.MethodPost, "/orders", bytes.NewReader(body)))
		var fields map[string]json.RawMessage
		if err == nil {
			if jerr := json.Unmarshal(body, &fields); jerr != nil {
				t.Fatalf("accepted %q: not a JSON object (%v)", body, jerr)
			}
			for k := range fields { // encoding/json matches names case-insensitively
				if !slices.ContainsFunc(orderFields, func(f string) bool { return strings.EqualFold(f, k) }) {
					t.Fatalf("accepted %q with field %q", body, k)
				}
			}
			if !utf8.Valid(body) {
				t.Fatalf("accepted a body that is not UTF-8: %q", body)
			}
			if in.Validate() != nil || in.Quantity <= 0 || in.Quantity > math.MaxInt32 || in.PaymentDue <= 0 ||
				in.CustomerID <= 0 || in.ItemID <= 0 {
				t.Fatalf("accepted an invalid order %+v", in)
			}
			n := strings.TrimSpace(in.CreditCardNo)
			if n == "" || len(n) > card.MaxNumberLen {
				t.Fatalf("accepted a card of %d characters", len(n))
			}
			if !utf8.ValidString(n) || strings.ContainsFunc(n, unicode.IsControl) {
				t.Fatalf("accepted a card a text column or a log line cannot hold as it is: %q", n)
			}
			return
		}
		if code := httpapi.StatusOf(err); code != http.StatusBadRequest && code != http.StatusRequestEntityTooLarge {
			t.Fatalf("refused %q with %d (%v), want 400 or 413", body, code, err)
		}
		var req struct {
			Card string `json:"creditCardNo"`
		}
		if json.Unmarshal(body, &req) == nil && len(req.Card) >= 6 && bytes.Count(body, []byte(req.Card)) == 1 &&
			strings.Contains(err.Error(), req.Card) {
			t.Fatalf("error %q quotes the card number", err)
		}
	})
}
