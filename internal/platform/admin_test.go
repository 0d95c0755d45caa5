package platform

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	tokenA = "aaaaaaaaaaaaaaaa-0001"
	tokenB = "bbbbbbbbbbbbbbbb-0002"
)

func TestParseAdminTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    string
		names []string
	}{
		{tokenA, []string{"admin"}},
		{"ops:" + tokenA + ", alice@example.com:" + tokenB, []string{"ops", "alice@example.com"}},
		{" ci-bot:" + tokenA + " ", []string{"ci-bot"}},
		{"ops:" + tokenA + ":with-colon", []string{"ops"}},
	}
	for _, tc := range tests {
		got, err := ParseAdminTokens(tc.in)
		if err != nil {
			t.Errorf("ParseAdminTokens(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.names, got.Names()); diff != "" {
			t.Errorf("ParseAdminTokens(%q) names (-want +got):\n%s", tc.in, diff)
		}
	}

	// Every problem at once, by position, never quoting a token.
	secret := "s3cr3t"
	bad := strings.Join([]string{
		"",                                    // 1 empty
		"ops:" + secret,                       // 2 too short
		"bad name:" + tokenA,                  // 3 invalid name
		":" + tokenA,                          // 4 empty name
		"x:" + tokenA + " " + secret + secret, // 5 white space
		"y:" + tokenA,                         // 6 duplicate token
		"ok:" + tokenB,
		"ok:" + secret + secret + secret, // 8 duplicate name
	}, ",")
	_, err := ParseAdminTokens(bad)
	if err == nil {
		t.Fatal("invalid ADMIN_TOKEN accepted")
	}
	for _, want := range []string{"entry 1 is empty", "entry 2 (ops): token shorter", "entry 3: name", "entry 4: name",
		"entry 5 (x): token contains white space", "entry 8: name ok given twice"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), tokenA) {
		t.Errorf("error %q quotes a token", err)
	}
	if _, err := ParseAdminTokens("a:" + tokenA + ",b:" + tokenA); err == nil || !strings.Contains(err.Error(), "entry 2 (b): same token") {
		t.Errorf("duplicate token: err = %v", err)
	}
}

func TestAdminTokensNeverPrint(t *testing.T) {
	t.Parallel()
	tokens, err := ParseAdminTokens("ops:" + tokenA + ",ci:" + tokenB)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "tokens", tokens, "config", Config{AdminTokens: tokens})
	for _, out := range []string{fmt.Sprint(tokens), fmt.Sprintf("%+v", Config{AdminTokens: tokens}), logs.String()} {
		if strings.Contains(out, tokenA) || strings.Contains(out, tokenB) {
			t.Errorf("tokens printed: %s", out)
		}
	}
	if !strings.Contains(logs.String(), `"tokens":["ops","ci"]`) {
		t.Errorf("log does not name the tokens: %s", logs.String())
	}
}

func TestRequireAdmin(t *testing.T) {
	t.Parallel()
	tokens, err := ParseAdminTokens("ops:" + tokenA + ",ci:" + tokenB)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	reached := 0
	h := RequireAdmin(tokens, slog.New(slog.NewJSONHandler(&logs, nil)))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		WriteJSON(w, http.StatusOK, map[string]string{"name": AdminName(r.Context())})
	}))
	tests := []struct {
		name, header string
		want         int
		wantName     string
	}{
		{"first token", "Bearer " + tokenA, 200, "ops"},
		{"second token", "Bearer " + tokenB, 200, "ci"},
		{"scheme in lower case", "bearer " + tokenB, 200, "ci"},
		{"no header", "", 401, ""},
		{"empty bearer", "Bearer ", 401, ""},
		{"wrong token", "Bearer " + tokenA + "x", 401, ""},
		{"prefix of a token", "Bearer " + tokenA[:len(tokenA)-1], 401, ""},
		{"basic auth", "Basic " + tokenA, 401, ""},
		{"token without scheme", tokenA, 401, ""},
	}
	for _, tc := range tests {
		before := reached
		req := httptest.NewRequest(http.MethodPost, "/admin/sagas/x/abort", nil)
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, rec.Code, tc.want)
		}
		var body map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Errorf("%s: body %q is not JSON: %v", tc.name, rec.Body, err)
		}
		if tc.want == 401 {
			if reached != before {
				t.Errorf("%s: refused request reached the handler", tc.name)
			}
			if body["error"] == "" || rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s: 401 without error body or challenge: %v %v", tc.name, body, rec.Header())
			}
		} else if body["name"] != tc.wantName {
			t.Errorf("%s: admin name %q, want %q", tc.name, body["name"], tc.wantName)
		}
	}
	if strings.Contains(logs.String(), tokenA) || strings.Contains(logs.String(), tokenB) {
		t.Errorf("a token was logged: %s", logs.String())
	}

	// No token configured: everything is refused.
	closed := RequireAdmin(AdminTokens{}, slog.New(slog.DiscardHandler))(http.NotFoundHandler())
	for _, header := range []string{"", "Bearer ", "Bearer " + tokenA} {
		req := httptest.NewRequest(http.MethodGet, "/admin/sagas", nil)
		req.Header.Set("Authorization", header)
		rec := httptest.NewRecorder()
		closed.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("no tokens configured, Authorization %q: status %d, want 401", header, rec.Code)
		}
	}
}

// A reader's token (ADMIN_READ_TOKEN, the console's) opens the admin API's
// reads and no action: an action with it is 403 and never reaches the
// handler.
func TestReaderTokenOnlyReads(t *testing.T) {
	t.Parallel()
	const tokenC = "cccccccccccccccccccccccc"
	tokens, err := ParseTokens("ops:"+tokenA, "console:"+tokenC)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ops", "console (read)"}, tokens.Names()); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	reached := 0
	h := RequireAdmin(tokens, slog.New(slog.DiscardHandler))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		WriteJSON(w, http.StatusOK, map[string]string{"name": AdminName(r.Context())})
	}))
	for _, tc := range []struct {
		method, token string
		want          int
	}{
		{http.MethodGet, tokenC, 200}, {http.MethodHead, tokenC, 200},
		{http.MethodPost, tokenC, 403}, {http.MethodPut, tokenC, 403}, {http.MethodDelete, tokenC, 403},
		{http.MethodPost, tokenA, 200}, {http.MethodGet, tokenA, 200},
	} {
		before := reached
		req := httptest.NewRequest(tc.method, "/admin/sagas/x/abort", nil)
		req.Header.Set("Authorization", "Bearer "+tc.token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s with %s: %d, want %d", tc.method, tc.token[:3], rec.Code, tc.want)
		}
		if tc.want == 403 && (reached != before || !strings.Contains(rec.Body.String(), "only reads")) {
			t.Errorf("%s with the reader's token: reached the handler, or no clear error: %s", tc.method, rec.Body)
		}
	}
	for _, bad := range [][2]string{
		{"ops:" + tokenA, "ops:" + tokenC},     // a name in both
		{"ops:" + tokenA, "console:" + tokenA}, // a token in both
		{"ops:" + tokenA, "console:short"},
	} {
		if _, err := ParseTokens(bad[0], bad[1]); err == nil || !strings.Contains(err.Error(), "ADMIN_READ_TOKEN entry 1") {
			t.Errorf("ParseTokens(%q, %q) = %v, want an error naming the reader's entry", bad[0], bad[1], err)
		}
	}
	if tokens, err := ParseTokens("", "console:"+tokenC); err != nil || len(tokens.Names()) != 1 {
		t.Errorf("readers only: %v %v", tokens.Names(), err)
	}
}
