package platform_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/consumer"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const opsToken = "ops-token-0123456789"

// parkedFixture is a real consumer on a real database and broker whose
// handler refuses "poison" (permanently) until fixed, behind the parked
// API.
type parkedFixture struct {
	srv  *httptest.Server
	pool interface {
		Query(context.Context, string, ...any) (pgx.Rows, error)
	}
	fixed   atomic.Bool
	mu      sync.Mutex
	applied []string
}

func newParkedFixture(t *testing.T) *parkedFixture {
	t.Helper()
	f := &parkedFixture{}
	pool := testenv.Pool(t, testenv.Database(t, migrations.Customer()))
	f.pool = pool
	addr, _ := testenv.Kafka(t)
	c, err := consumer.New(consumer.Config{
		Group: "customer-service", Topics: []string{"in"}, Pool: pool, Logger: slog.New(slog.DiscardHandler),
		Handler: func(ctx context.Context, tx pgx.Tx, m consumer.Message) error {
			if string(m.Value) == `"poison"` && !f.fixed.Load() {
				return consumer.Permanent(errors.New("cannot apply poison yet"))
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			f.applied = append(f.applied, string(m.Value))
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(c.Opts(), kgo.SeedBrokers(addr))...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), 1, -1, nil, "in"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, cl) }()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	tokens, err := platform.ParseAdminTokens("ops:" + opsToken)
	if err != nil {
		t.Fatal(err)
	}
	api := platform.ParkedAPI{Service: "customer", Pool: pool, Consumer: c, Tokens: tokens, Log: slog.New(slog.DiscardHandler)}
	f.srv = httptest.NewServer(http.StripPrefix("/admin/parked", api.Routes()))
	t.Cleanup(f.srv.Close)

	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("in"))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for _, v := range []string{`"good"`, `"poison"`, `"also poison"`} {
		r := &kgo.Record{Key: []byte("k"), Value: []byte(v), Headers: []kgo.RecordHeader{{Key: "id", Value: []byte(uuid.NewString())}}}
		if v == `"also poison"` {
			r.Headers = nil // no id: can never be deduplicated, so never replayed
		}
		if err := prod.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *parkedFixture) do(t *testing.T, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+"/admin/parked"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: answer %q is not a JSON object", method, path, b)
	}
	return resp.StatusCode, out
}

func (f *parkedFixture) listIDs(t *testing.T, status string) []int64 {
	t.Helper()
	code, out := f.do(t, http.MethodGet, "?status="+status, opsToken, "")
	if code != http.StatusOK {
		t.Fatalf("list = %d %v", code, out)
	}
	var ids []int64
	for _, p := range out["parked"].([]any) {
		ids = append(ids, int64(p.(map[string]any)["id"].(float64)))
	}
	return ids
}

func (f *parkedFixture) auditEvents(t *testing.T) []string {
	t.Helper()
	rows, err := f.pool.Query(context.Background(),
		`SELECT aggregatetype || ' ' || type || ' ' || (payload->>'outcome') || ' by ' || (payload->>'actor') FROM outboxevent ORDER BY created_at`)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// A poison message is parked, listed, replayed while still failing (it
// stays parked), replayed once fixed (applied, audited), and replayed again
// (409, no effect).
func TestParkedMessageListedFixedAndReplayedOnce(t *testing.T) {
	t.Parallel()
	f := newParkedFixture(t)
	testenv.Eventually(t, 20*time.Second, func() bool { return len(f.listIDs(t, "PARKED")) == 2 }, "messages not parked")
	ids := f.listIDs(t, "PARKED")
	poison, noID := ids[0], ids[1]

	code, out := f.do(t, http.MethodPost, fmt.Sprintf("/%d/replay", poison), opsToken, `{"reason":"try before the fix"}`)
	if code != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(out["error"]), "cannot apply poison yet") {
		t.Errorf("replay before the fix = %d %v, want 422 with the handler's error", code, out)
	}
	if got := f.listIDs(t, "PARKED"); !cmp.Equal(got, ids) {
		t.Errorf("after a failed replay parked = %v, want %v", got, ids)
	}

	f.fixed.Store(true)
	code, out = f.do(t, http.MethodPost, fmt.Sprintf("/%d/replay", poison), opsToken, `{"reason":"handler fixed"}`)
	if code != http.StatusOK || out["replayOutcome"] != consumer.OutcomeApplied || out["replayedBy"] != "ops" || out["replayAttempts"] != 2.0 {
		t.Errorf("replay after the fix = %d %v", code, out)
	}
	code, out = f.do(t, http.MethodPost, fmt.Sprintf("/%d/replay", poison), opsToken, `{"reason":"again"}`)
	if code != http.StatusConflict {
		t.Errorf("second replay = %d %v, want 409", code, out)
	}
	// The message without an id can never be replayed: it stays parked.
	code, out = f.do(t, http.MethodPost, "/replay", opsToken, `{"reason":"all"}`)
	if code != http.StatusOK || len(out["replayed"].([]any)) != 0 || len(out["failed"].([]any)) != 1 {
		t.Errorf("replay all = %d %v, want the id-less message failed", code, out)
	}
	f.mu.Lock()
	applied := append([]string(nil), f.applied...)
	f.mu.Unlock()
	if diff := cmp.Diff([]string{`"good"`, `"poison"`}, applied); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	if got := f.listIDs(t, "REPLAYED"); !cmp.Equal(got, []int64{poison}) {
		t.Errorf("replayed = %v, want [%d]", got, poison)
	}
	if got := f.listIDs(t, "PARKED"); !cmp.Equal(got, []int64{noID}) {
		t.Errorf("still parked = %v, want [%d]", got, noID)
	}
	if diff := cmp.Diff([]string{"customer-admin OperatorAction applied by ops"}, f.auditEvents(t)); diff != "" {
		t.Errorf("audit events (-want +got):\n%s", diff)
	}
}

// Without a valid token nothing is listed or replayed; bad input is 400,
// an unknown message 404; none of it changes anything.
func TestParkedAPIRefusesAndValidates(t *testing.T) {
	t.Parallel()
	f := newParkedFixture(t)
	f.fixed.Store(true) // a replay that got through would succeed
	testenv.Eventually(t, 20*time.Second, func() bool { return len(f.listIDs(t, "PARKED")) == 1 }, "message not parked")
	id := f.listIDs(t, "PARKED")[0]
	for _, tc := range []struct {
		method, path, token, body string
		want                      int
	}{
		{http.MethodGet, "", "", "", http.StatusUnauthorized},
		{http.MethodGet, "", "wrong-token-0123456789", "", http.StatusUnauthorized},
		{http.MethodPost, fmt.Sprintf("/%d/replay", id), "", `{"reason":"x"}`, http.StatusUnauthorized},
		{http.MethodPost, "/replay", "", `{"reason":"x"}`, http.StatusUnauthorized},
		{http.MethodGet, "?status=LOST", opsToken, "", http.StatusBadRequest},
		{http.MethodGet, "?limit=0", opsToken, "", http.StatusBadRequest},
		{http.MethodGet, "?limit=501", opsToken, "", http.StatusBadRequest},
		{http.MethodGet, "?after=x", opsToken, "", http.StatusBadRequest},
		{http.MethodGet, "?colour=red", opsToken, "", http.StatusBadRequest},
		{http.MethodPost, "/abc/replay", opsToken, `{"reason":"x"}`, http.StatusBadRequest},
		{http.MethodPost, fmt.Sprintf("/%d/replay", id), opsToken, ``, http.StatusBadRequest},
		{http.MethodPost, fmt.Sprintf("/%d/replay", id), opsToken, `{}`, http.StatusBadRequest},
		{http.MethodPost, fmt.Sprintf("/%d/replay", id), opsToken, `{"reason":" "}`, http.StatusBadRequest},
		{http.MethodPost, fmt.Sprintf("/%d/replay", id), opsToken, `{"reason":"a\u0000b"}`, http.StatusBadRequest},
		{http.MethodPost, "/replay", opsToken, "{\"reason\":\"a\xffb\"}", http.StatusBadRequest},
		{http.MethodPost, fmt.Sprintf("/%d/replay", id), opsToken, `{"reason":"x","force":true}`, http.StatusBadRequest},
		{http.MethodPost, fmt.Sprintf("/%d/replay", id), opsToken, `{"reason":"x"}{}`, http.StatusBadRequest},
		{http.MethodPost, fmt.Sprintf("/%d/replay", id), opsToken, `{"reason":"` + strings.Repeat("x", platform.MaxAdminBody) + `"}`, http.StatusRequestEntityTooLarge},
		{http.MethodPost, "/replay", opsToken, `{"reason":""}`, http.StatusBadRequest},
		{http.MethodPost, "/999999/replay", opsToken, `{"reason":"x"}`, http.StatusNotFound},
		{http.MethodDelete, fmt.Sprintf("/%d/replay", id), opsToken, "", http.StatusMethodNotAllowed},
	} {
		code, out := f.do(t, tc.method, tc.path, tc.token, tc.body)
		if code != tc.want || out["error"] == nil {
			t.Errorf("%s %s %q (token %q) = %d %v, want %d with an error", tc.method, tc.path, tc.body, tc.token, code, out, tc.want)
		}
	}
	if got := f.listIDs(t, "PARKED"); !cmp.Equal(got, []int64{id}) {
		t.Errorf("parked = %v after refused requests, want [%d]", got, id)
	}
	if evs := f.auditEvents(t); len(evs) != 0 {
		t.Errorf("refused requests left audit events: %v", evs)
	}
}
