package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/saga/sagaapi"
	"github.com/sagabox/sagabox/services/order/internal/app"
	"github.com/sagabox/sagabox/services/order/internal/httpapi"
)

const (
	opsToken = "ops-token-0123456789"
	ciToken  = "ci-token-9876543210"
)

type adminServer struct {
	t    *testing.T
	url  string
	pool *pgxpool.Pool
}

func newAdminServer(t *testing.T) *adminServer {
	t.Helper()
	pool := testenv.Pool(t, testenv.Database(t, migrations.Order()))
	log := slog.New(slog.DiscardHandler)
	a := newApp(t, pool, log)
	tokens, err := platform.ParseAdminTokens("ops:" + opsToken + ",ci:" + ciToken)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.Routes(a, http.NotFoundHandler(), log, tokens))
	t.Cleanup(srv.Close)
	return &adminServer{t: t, url: srv.URL, pool: pool}
}

// call sends a request with Authorization "Bearer token" (none when token
// is "") and decodes the JSON object it answers.
func (s *adminServer) call(method, path, body, token string) (int, map[string]any) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		s.t.Fatalf("%s %s: response %q is not a JSON object: %v", method, path, raw, err)
	}
	return resp.StatusCode, out
}

func (s *adminServer) placeOrder(card string) (orderID int64, sagaID string) {
	s.t.Helper()
	code, resp := s.call("POST", "/orders",
		fmt.Sprintf(`{"itemId":1,"quantity":1,"customerId":456,"paymentDue":4999,"creditCardNo":%q}`, card), "")
	if code != http.StatusAccepted {
		s.t.Fatalf("POST /orders = %d %v", code, resp)
	}
	return int64(resp["orderId"].(float64)), resp["sagaId"].(string)
}

// written is everything an admin request may change.
type written struct {
	Versions, History, Outbox int
	Orders                    string
}

func (s *adminServer) written() written {
	s.t.Helper()
	var w written
	err := s.pool.QueryRow(context.Background(), `SELECT
		(SELECT coalesce(sum(version), 0) FROM sagastate), (SELECT count(*) FROM sagastate_history),
		(SELECT count(*) FROM outboxevent), (SELECT coalesce(string_agg(status, ',' ORDER BY id), '') FROM purchaseorder)`).
		Scan(&w.Versions, &w.History, &w.Outbox, &w.Orders)
	if err != nil {
		s.t.Fatal(err)
	}
	return w
}

// reply applies a participant's reply through the app's handler, as the
// consumer would.
func (s *adminServer) reply(sagaID, step, status string) {
	s.t.Helper()
	// The HTTP API cannot do it; go through the database as the consumer does.
	a := newApp(s.t, s.pool, slog.New(slog.DiscardHandler))
	tx, err := s.pool.Begin(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	m := consumer.Message{
		Topic: step + ".response", Key: sagaID, Value: fmt.Appendf(nil, `{"status":%q}`, status),
		ID: uuid.New(), EventType: "REPLY",
	}
	if err := a.Sagas().OnReply(context.Background(), tx, m); err != nil {
		s.t.Fatal(err)
	}
	if err := tx.Commit(context.Background()); err != nil {
		s.t.Fatal(err)
	}
}

// endpoints are every admin endpoint with a valid request for saga id.
func endpoints(id string) [][3]string {
	return [][3]string{
		{"GET", "/admin/sagas", ""},
		{"GET", "/admin/sagas?stuck=true&status=STARTED&limit=10", ""},
		{"GET", "/admin/sagas/" + id, ""},
		{"GET", "/admin/sagas/stats", ""},
		{"POST", "/admin/sagas/" + id + "/abort", `{"reason":"customer asked"}`},
		{"POST", "/admin/sagas/" + id + "/retry", ``},
		{"POST", "/admin/sagas/" + id + "/compensate", `{"step":"credit-approval","reason":"done by hand"}`},
		{"GET", "/admin/nothing-here", ""},
	}
}

func TestAdminRefusesRequestsWithoutAValidToken(t *testing.T) {
	t.Parallel()
	s := newAdminServer(t)
	_, sagaID := s.placeOrder("1111-2222-3333-4444")
	before := s.written()
	for _, ep := range endpoints(sagaID) {
		for _, token := range []string{"", "wrong-token-0123456789", opsToken + "x", strings.ToUpper(opsToken)} {
			code, body := s.call(ep[0], ep[1], ep[2], token)
			if code != http.StatusUnauthorized || body["error"] == nil {
				t.Errorf("%s %s with token %q: %d %v, want 401 with an error", ep[0], ep[1], token, code, body)
			}
		}
	}
	if diff := cmp.Diff(before, s.written()); diff != "" {
		t.Errorf("refused requests wrote (-before +after):\n%s", diff)
	}
}

func TestAdminRefusesBadInputAndWritesNothing(t *testing.T) {
	t.Parallel()
	s := newAdminServer(t)
	_, sagaID := s.placeOrder("1111-2222-3333-4444")
	sagas := "/admin/sagas/" + sagaID
	unknown := "/admin/sagas/" + uuid.NewString()
	long := strings.Repeat("x", sagaapi.MaxReasonLen+1)
	tests := []struct {
		method, path, body string
		want               int
		errContains        string
	}{
		{"GET", "/admin/sagas?status=RUNNING", "", 400, "unknown saga status"},
		{"GET", "/admin/sagas?step=shipping", "", 400, "unknown step"},
		{"GET", "/admin/sagas?older_than=yesterday", "", 400, "older_than"},
		{"GET", "/admin/sagas?older_than=-5m", "", 400, "older_than"},
		{"GET", "/admin/sagas?stuck=maybe", "", 400, "stuck"},
		{"GET", "/admin/sagas?limit=0", "", 400, "limit"},
		{"GET", "/admin/sagas?limit=501", "", 400, "limit"},
		{"GET", "/admin/sagas?limit=ten", "", 400, "limit"},
		{"GET", "/admin/sagas?after=not-a-cursor", "", 400, "after"},
		{"GET", "/admin/sagas?staus=STARTED", "", 400, "unknown parameter"},
		{"GET", "/admin/sagas?customer=abc", "", 400, "customer"},
		{"GET", "/admin/sagas?order=-1", "", 400, "order"},
		{"GET", "/admin/sagas?newer_than=soon", "", 400, "newer_than"},
		{"GET", "/admin/sagas/stats?window=forever", "", 400, "window"},
		{"GET", "/admin/sagas/stats?bucket=1ms", "", 400, "bucket"},
		{"GET", "/admin/sagas/stats?window=24h&bucket=1s", "", 400, "buckets"},
		{"GET", "/admin/sagas/stats?windw=1m", "", 400, "unknown parameter"},
		{"GET", "/admin/sagas/not-a-uuid", "", 400, "UUID"},
		{"POST", "/admin/sagas/not-a-uuid/abort", `{"reason":"x"}`, 400, "UUID"},
		{"POST", sagas + "/abort", ``, 400, "malformed"},
		{"POST", sagas + "/abort", `{}`, 400, "reason is required"},
		{"POST", sagas + "/abort", `{"reason":"  "}`, 400, "reason is required"},
		{"POST", sagas + "/abort", `{"reason":"` + long + `"}`, 400, "reason longer"},
		{"POST", sagas + "/abort", `{"reason":"a\u0000b"}`, 400, "reason must be text"},
		{"POST", sagas + "/abort", `{"reason":"a\u001bb"}`, 400, "reason must be text"},
		{"POST", sagas + "/retry", `{"reason":"a\u0000b"}`, 400, "reason must be text"},
		{"POST", sagas + "/compensate", `{"step":"credit-approval","reason":"a\u0000"}`, 400, "reason must be text"},
		{"POST", sagas + "/abort", "{\"reason\":\"a\xffb\"}", 400, "not UTF-8"},
		{"POST", sagas + "/abort", `{"reason":"x","step":"payment"}`, 400, "step"},
		{"POST", sagas + "/abort", `{"reason":`, 400, "malformed"},
		{"POST", sagas + "/abort", `{"reason":"x"} {}`, 400, "malformed"},
		{"POST", sagas + "/retry", `{"force":true}`, 400, "force"},
		{"POST", sagas + "/retry", `[]`, 400, "malformed"},
		{"POST", sagas + "/compensate", `{"reason":"x"}`, 400, "step is required"},
		{"POST", sagas + "/compensate", `{"step":"shipping","reason":"x"}`, 400, "unknown step"},
		{"POST", sagas + "/compensate", `{"step":"credit-approval"}`, 400, "reason is required"},
		{"POST", sagas + "/compensate", strings.Repeat(" ", httpapi.MaxBodyBytes+1), 413, "larger"},
		{"GET", unknown, "", 404, "not found"},
		{"POST", unknown + "/abort", `{"reason":"x"}`, 404, "not found"},
		{"POST", unknown + "/retry", ``, 404, "not found"},
		{"POST", unknown + "/compensate", `{"step":"payment","reason":"x"}`, 404, "not found"},
		{"POST", sagas + "/compensate", `{"step":"credit-approval","reason":"x"}`, 409, "does not apply"},
		{"DELETE", sagas, "", 405, "method not allowed"},
	}
	before := s.written()
	for _, tc := range tests {
		code, body := s.call(tc.method, tc.path, tc.body, opsToken)
		msg, _ := body["error"].(string)
		if code != tc.want || !strings.Contains(msg, tc.errContains) {
			t.Errorf("%s %s %.60q: %d %q, want %d with an error containing %q", tc.method, tc.path, tc.body, code, msg, tc.want, tc.errContains)
		}
	}
	if diff := cmp.Diff(before, s.written()); diff != "" {
		t.Errorf("refused requests wrote (-before +after):\n%s", diff)
	}
}

// Every action is audited: in the saga's history (who, what, why) and as an
// event in the outbox, in the transaction of the action.
func TestAdminActionsAreAudited(t *testing.T) {
	t.Parallel()
	s := newAdminServer(t)
	orderID, sagaID := s.placeOrder("1111-2222-3333-4444")
	path := "/admin/sagas/" + sagaID

	code, body := s.call("POST", path+"/retry", ``, opsToken)
	if saga := body["saga"].(map[string]any); code != 200 || saga["attempt"] != float64(1) || saga["status"] != "STARTED" {
		t.Fatalf("retry: %d %v", code, body)
	}
	code, body = s.call("POST", path+"/abort", `{"reason":"customer called to cancel"}`, ciToken)
	if saga := body["saga"].(map[string]any); code != 200 || saga["status"] != "ABORTING" {
		t.Fatalf("abort: %d %v", code, body)
	}
	code, body = s.call("POST", path+"/abort", `{"reason":"again"}`, ciToken)
	if code != http.StatusConflict {
		t.Errorf("second abort: %d %v, want 409", code, body)
	}
	code, body = s.call("POST", path+"/compensate", `{"step":"credit-approval","reason":"customer service unreachable, checked by hand"}`, opsToken)
	if saga := body["saga"].(map[string]any); code != 200 || saga["status"] != "ABORTED" {
		t.Fatalf("compensate: %d %v", code, body)
	}
	for _, ep := range [][3]string{{"POST", path + "/retry", ``}, {"POST", path + "/abort", `{"reason":"x"}`}} {
		if code, body := s.call(ep[0], ep[1], ep[2], opsToken); code != http.StatusConflict {
			t.Errorf("%s on an aborted saga: %d %v, want 409", ep[1], code, body)
		}
	}

	code, detail := s.call("GET", path, "", opsToken)
	if code != 200 || detail["orderId"] != float64(orderID) {
		t.Fatalf("detail: %d %v", code, detail)
	}
	if p := detail["saga"].(map[string]any)["payload"].(map[string]any); p["credit-card-sealed"] != "v1.test.…" || p["credit-card-no"] != nil {
		t.Errorf("payload %v: want the card as the sealing key's id only", p)
	}
	type row struct{ Step, From, To, Saga, Kind, Actor, Action, Reason string }
	var got []row
	for _, h := range detail["history"].([]any) {
		h := h.(map[string]any)
		c := h["cause"].(map[string]any)
		str := func(m map[string]any, k string) string { v, _ := m[k].(string); return v }
		got = append(got, row{str(h, "step"), str(h, "from"), str(h, "to"), str(h, "sagaStatus"),
			str(c, "kind"), str(c, "actor"), str(c, "action"), str(c, "reason")})
	}
	want := []row{
		{"credit-approval", "", "STARTED", "STARTED", "start", "", "", ""},
		{"credit-approval", "STARTED", "STARTED", "STARTED", "operator", "ops", "retry", ""},
		{"credit-approval", "STARTED", "COMPENSATING", "ABORTING", "operator", "ci", "abort", "customer called to cancel"},
		{"credit-approval", "COMPENSATING", "COMPENSATED", "ABORTED", "operator", "ops", "compensate", "customer service unreachable, checked by hand"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}

	// The outbox: the saga's messages and one audit event per action.
	rows, err := s.pool.Query(context.Background(), `SELECT aggregatetype, aggregateid, type, payload FROM outboxevent
		WHERE aggregatetype = $1 ORDER BY created_at`, app.AdminAggregate)
	if err != nil {
		t.Fatal(err)
	}
	var audits []sagaapi.AuditEvent
	for rows.Next() {
		var (
			typ, key, aggType string
			e                 sagaapi.AuditEvent
		)
		if err := rows.Scan(&aggType, &key, &typ, &e); err != nil {
			t.Fatal(err)
		}
		if key != sagaID || typ != sagaapi.AuditEventType {
			t.Errorf("audit event key %s type %s", key, typ)
		}
		audits = append(audits, e)
	}
	id := uuid.MustParse(sagaID)
	wantAudits := []sagaapi.AuditEvent{
		{SagaID: id, Action: "retry", Actor: "ops", SagaStatus: "STARTED", Version: 1},
		{SagaID: id, Action: "abort", Actor: "ci", Reason: "customer called to cancel", SagaStatus: "ABORTING", Version: 2},
		{SagaID: id, Action: "compensate", Step: "credit-approval", Actor: "ops", Reason: "customer service unreachable, checked by hand", SagaStatus: "ABORTED", Version: 3},
	}
	if diff := cmp.Diff(wantAudits, audits); diff != "" {
		t.Errorf("audit events (-want +got):\n%s", diff)
	}
	var requests, cancels int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE type = 'REQUEST'), count(*) FILTER (WHERE type = 'CANCEL')
		FROM outboxevent WHERE aggregatetype = 'credit-approval'`).Scan(&requests, &cancels); err != nil || requests != 2 || cancels != 1 {
		t.Errorf("credit requests %d, cancels %d (%v); want 2 (first + retry) and 1 (abort)", requests, cancels, err)
	}
	if code, order := s.call("GET", fmt.Sprintf("/orders/%d", orderID), "", ""); code != 200 || order["status"] != "REJECTED" {
		t.Errorf("order after abort: %d %v", code, order["status"])
	}
}

func TestAdminListsSagas(t *testing.T) {
	t.Parallel()
	s := newAdminServer(t)
	var ids []string // newest first
	for range 5 {
		_, id := s.placeOrder("1111-2222-3333-4444")
		ids = append([]string{id}, ids...)
	}
	s.reply(ids[4], "credit-approval", "REJECTED") // the oldest: ABORTED
	if _, err := s.pool.Exec(context.Background(), `UPDATE sagastate SET deadline = now() - interval '1 minute' WHERE id = $1`, ids[1]); err != nil {
		t.Fatal(err)
	}
	list := func(query string) ([]string, string) {
		t.Helper()
		code, body := s.call("GET", "/admin/sagas"+query, "", opsToken)
		if code != 200 {
			t.Fatalf("GET /admin/sagas%s = %d %v", query, code, body)
		}
		var got []string
		for _, s := range body["sagas"].([]any) {
			got = append(got, s.(map[string]any)["id"].(string))
		}
		next, _ := body["next"].(string)
		return got, next
	}
	for query, want := range map[string][]string{
		"":                        ids,
		"?status=STARTED":         ids[:4],
		"?status=aborted":         ids[4:],
		"?stuck=true":             ids[1:2],
		"?step=credit-approval":   ids[:4], // running sagas waiting for it
		"?step=payment":           nil,
		"?older_than=1h":          nil,
		"?stuck=false&limit=500":  ids,
		"?status=STARTED&limit=3": ids[:3],
	} {
		got, _ := list(query)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("GET /admin/sagas%s (-want +got):\n%s", query, diff)
		}
	}
	var paged []string
	query := "?limit=2"
	for range 5 {
		got, next := list(query)
		paged = append(paged, got...)
		if next == "" {
			break
		}
		query = "?limit=2&after=" + next
	}
	if diff := cmp.Diff(ids, paged); diff != "" {
		t.Errorf("paged (-want +got):\n%s", diff)
	}
}
