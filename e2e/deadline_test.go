package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sagabox/sagabox/internal/pgcluster"
	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/pkg/saga/sagaapi"
	"github.com/sagabox/sagabox/registry"
	"github.com/sagabox/sagabox/services/order"
)

const adminToken = "e2e-admin-token-0123456789"

// shortDeadlines makes the payment step time out after 1 s, retry once
// (waiting 2 s), and re-send its cancel every 2 s; the sweeper looks every
// 100 ms. Credit approval keeps a long deadline: the customer service runs.
func shortDeadlines() map[string]string {
	return map[string]string{
		"ADMIN_TOKEN":                  "e2e:" + adminToken,
		"SAGA_PAYMENT_TIMEOUT":         "1s",
		"SAGA_CREDIT_APPROVAL_TIMEOUT": "30s",
		"SAGA_RETRIES":                 "1",
		"SAGA_MAX_TIMEOUT":             "2s",
		"SAGA_SWEEP_INTERVAL":          "100ms",
		"SAGA_STUCK_AFTER":             "1s",
	}
}

// admin calls the order service's admin API with the test's token and
// decodes the answer into out.
func (s *system) admin(method, path string, body string, out any) int {
	s.t.Helper()
	req, err := http.NewRequest(method, s.urls["order"]+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

// historyRow is one transition as the admin API shows it.
type historyRow = sagaapi.History

func (s *system) history(sagaID string) []historyRow {
	s.t.Helper()
	d, err := s.adminClient().Saga(context.Background(), uuid.MustParse(sagaID))
	if err != nil {
		s.t.Fatalf("GET /admin/sagas/%s: %v", sagaID, err)
	}
	return d.History
}

// checkDeadlines checks that every deadline-caused transition of a saga
// happened at or after the deadline the transition before it had set: no
// deadline was acted on early, hence none twice (a second act on the same
// deadline would come before the deadline the first act set).
func checkDeadlines(t *testing.T, sagaID string, h []historyRow) {
	t.Helper()
	var prev *historyRow
	for i := range h {
		r := &h[i]
		if prev != nil && r.Version == prev.Version {
			continue // another step's row of the same transition
		}
		if prev != nil && r.Version != prev.Version+1 {
			t.Errorf("saga %s: version %d follows %d", sagaID, r.Version, prev.Version)
		}
		if (r.Cause.Kind == "retry" || r.Cause.Kind == "timeout") && (prev == nil || prev.Deadline == nil || r.At.Before(*prev.Deadline)) {
			t.Errorf("saga %s: %s at %v, before the deadline %v set at version %d", sagaID, r.Cause.Kind, r.At, prev.Deadline, prev.Version)
		}
		prev = r
	}
}

// requestTypes lists the eventType of the records on topic keyed by sagaID.
func (s *system) requestTypes(topic, sagaID string) []string {
	s.t.Helper()
	var types []string
	for _, r := range s.records(topic) {
		if string(r.Key) == sagaID {
			types = append(types, header(r, "eventType"))
		}
	}
	return types
}

// The payment service is stopped for longer than the payment deadline. The
// saga sends the payment request once more, then abandons the step: the
// order is REJECTED and the customer's credit released while the payment
// service is still down, and the payment's cancel is sent again and again.
// Started again, the payment service takes the stale request — charging —
// and then the cancel — refunding: no money moved in the end, nothing
// changed twice, and the cancel's reply ends the saga.
func TestStoppedPaymentServiceTimesOutAndCompensates(t *testing.T) {
	t.Parallel()
	s := startSystem(t, options{env: shortDeadlines()})
	if err := s.stack.StopService("payment"); err != nil {
		t.Fatal(err)
	}
	p := s.placeOrder(requestFile(t, "place-order.json"))
	var v orderView
	testenv.Eventually(t, settleTimeout, func() bool {
		v = s.order(p.OrderID)
		return v.Status == "REJECTED" && v.Saga.StepStatus["credit-approval"] == "COMPENSATED" && s.openLimit(customer456) == initialLimit
	}, "credit never released with the payment service down: %+v", &v)
	if v.Saga.Status != "ABORTING" || v.Saga.StepStatus["payment"] != "COMPENSATING" {
		t.Errorf("with the payment service down: saga %s, steps %v; want ABORTING, payment COMPENSATING", v.Saga.Status, v.Saga.StepStatus)
	}
	// The cancel is sent again at its deadlines, and the saga shows as stuck.
	testenv.Eventually(t, settleTimeout, func() bool {
		types := s.requestTypes("payment.request", p.SagaID)
		return len(types) >= 4 && cmp.Equal([]string{"REQUEST", "REQUEST", "CANCEL", "CANCEL"}, types[:4])
	}, "payment requests of the saga: %v", s.requestTypes("payment.request", p.SagaID))
	var stuck struct {
		Sagas []struct {
			ID string `json:"id"`
		} `json:"sagas"`
	}
	if code := s.admin("GET", "/admin/sagas?stuck=true", "", &stuck); code != 200 || len(stuck.Sagas) != 1 || stuck.Sagas[0].ID != p.SagaID {
		t.Errorf("stuck sagas: %d %+v, want the one waiting for the payment service", code, stuck)
	}

	if err := s.stack.StartService("payment"); err != nil {
		t.Fatal(err)
	}
	// Ended, and nothing in flight any more: what is checked below is final.
	ctx := context.Background()
	testenv.Eventually(t, settleTimeout, func() bool {
		v = s.order(p.OrderID)
		return v.Saga.Status == "ABORTED" && s.quiescent(ctx)
	}, "saga never ended after the payment service came back: %+v", &v)
	want := map[string]string{"credit-approval": "COMPENSATED", "payment": "COMPENSATED"}
	if v.Status != "REJECTED" || !cmp.Equal(want, v.Saga.StepStatus) {
		t.Errorf("order %s, steps %v; want REJECTED, %v", v.Status, v.Saga.StepStatus, want)
	}
	if diff := cmp.Diff([]payment{{OrderID: p.OrderID, Amount: 4999, Status: "REFUNDED"}}, s.payments(p.OrderID)); diff != "" {
		t.Errorf("payments: the stale request was charged and must be refunded (-want +got):\n%s", diff)
	}
	if got := s.openLimit(customer456); got != initialLimit {
		t.Errorf("openLimit = %d, want %d", got, initialLimit)
	}
	var allocated int
	if err := s.dbs["customer"].QueryRow(ctx, `SELECT count(*) FROM participant_step WHERE step = 'credit-approval' AND status = 'DONE'`).Scan(&allocated); err != nil || allocated != 0 {
		t.Errorf("%d allocations still held (%v)", allocated, err)
	}

	h := s.history(p.SagaID)
	checkDeadlines(t, p.SagaID, h)
	var kinds []string
	for _, r := range h {
		if r.Step == "payment" && r.Cause.Kind != "retry" || r.From == "STARTED" && r.Cause.Kind == "retry" {
			kinds = append(kinds, fmt.Sprintf("%s %s→%s", r.Cause.Kind, r.From, r.To))
		}
	}
	wantKinds := []string{
		"reply →STARTED",                 // credit approved: payment requested
		"retry STARTED→STARTED",          // the payment deadline: sent again
		"timeout STARTED→ABANDONED",      // the retry's deadline: abandoned, credit compensated first
		"reply ABANDONED→COMPENSATING",   // credit released: the payment's cancel
		"reply COMPENSATING→COMPENSATED", // the cancel's reply
	}
	if diff := cmp.Diff(wantKinds, kinds); diff != "" {
		t.Errorf("payment step history (-want +got):\n%s", diff)
	}
}

// quiescent reports that nothing is in flight: every outbox row of every
// service is on its topic, and every consumer group has consumed every
// topic to its end. An ended saga (no deadline left) cannot change after.
func (s *system) quiescent(ctx context.Context) bool {
	s.t.Helper()
	for _, c := range registry.Services() {
		// An orchestrator's outbox goes to requests, a participant's to replies.
		svc, suffix := c.Name, ".response"
		if c.Role == registry.Orchestrator {
			suffix = ".request"
		}
		rows, err := s.dbs[svc].Query(ctx, `SELECT aggregatetype, id::text FROM outboxevent`)
		if err != nil {
			s.t.Fatal(err)
		}
		byTopic := map[string][]string{}
		for rows.Next() {
			var agg, id string
			if err := rows.Scan(&agg, &id); err != nil {
				s.t.Fatal(err)
			}
			byTopic[agg+suffix] = append(byTopic[agg+suffix], id)
		}
		if err := rows.Err(); err != nil {
			s.t.Fatal(err)
		}
		for topic, ids := range byTopic {
			published := map[string]bool{}
			for _, r := range s.records(topic) {
				published[header(r, "id")] = true
			}
			for _, id := range ids {
				if !published[id] {
					return false
				}
			}
		}
	}
	return s.caughtUp(ctx)
}

// An operator aborts a saga waiting for the stopped payment service, and —
// the payment's cancel unanswerable — marks its compensation done by hand.
// Both actions reach Kafka as audit events. When the payment service comes
// back, it charges the stale request and refunds it on the cancel; the
// ended saga does not move.
func TestOperatorAbortsAndCompensatesByHand(t *testing.T) {
	t.Parallel()
	env := shortDeadlines()
	env["SAGA_PAYMENT_TIMEOUT"] = "10m" // only the operator acts
	s := startSystem(t, options{env: env})
	ctx := context.Background()
	if err := s.stack.StopService("payment"); err != nil {
		t.Fatal(err)
	}
	p := s.placeOrder(requestFile(t, "place-order.json"))
	var v orderView
	testenv.Eventually(t, settleTimeout, func() bool {
		v = s.order(p.OrderID)
		return v.Saga.StepStatus["payment"] == "STARTED"
	}, "payment never requested: %+v", &v)

	path := "/admin/sagas/" + p.SagaID
	if code := s.do("POST", s.urls["order"]+path+"/abort", []byte(`{"reason":"x"}`), nil); code != http.StatusUnauthorized {
		t.Errorf("abort without a token: %d, want 401", code)
	}
	if code := s.admin("POST", path+"/abort", `{"reason":"payment provider down for the day"}`, nil); code != http.StatusOK {
		t.Fatalf("abort: %d", code)
	}
	testenv.Eventually(t, settleTimeout, func() bool {
		v = s.order(p.OrderID)
		return v.Saga.StepStatus["payment"] == "COMPENSATING" && s.openLimit(customer456) == initialLimit
	}, "credit not released after the abort: %+v", &v)
	if code := s.admin("POST", path+"/compensate", `{"step":"credit-approval","reason":"wrong step"}`, nil); code != http.StatusConflict {
		t.Errorf("compensate a step not being compensated: %d, want 409", code)
	}
	if code := s.admin("POST", path+"/compensate", `{"step":"payment","reason":"checked with the provider: nothing charged"}`, nil); code != http.StatusOK {
		t.Fatalf("compensate: %d", code)
	}
	v = s.order(p.OrderID)
	if v.Status != "REJECTED" || v.Saga.Status != "ABORTED" {
		t.Fatalf("after compensating by hand: order %s saga %s", v.Status, v.Saga.Status)
	}

	// The audit events, through the outbox, the relay and Kafka.
	type audit struct {
		Action, Actor, Step, Reason, SagaStatus string
	}
	var audits []audit
	testenv.Eventually(t, settleTimeout, func() bool {
		audits = nil
		for _, r := range s.records("order-admin.request") {
			var a audit
			if string(r.Key) != p.SagaID || header(r, "eventType") != "OperatorAction" || json.Unmarshal(r.Value, &a) != nil {
				t.Errorf("audit record %s %s %s", r.Key, header(r, "eventType"), r.Value)
			}
			audits = append(audits, a)
		}
		return len(audits) == 2
	}, "audit events on order-admin.request: %+v", &audits)
	wantAudits := []audit{
		{"abort", "e2e", "", "payment provider down for the day", "ABORTING"},
		{"compensate", "e2e", "payment", "checked with the provider: nothing charged", "ABORTED"},
	}
	if diff := cmp.Diff(wantAudits, audits); diff != "" {
		t.Errorf("audit events (-want +got):\n%s", diff)
	}

	version := v.Saga.Version
	if err := s.stack.StartService("payment"); err != nil {
		t.Fatal(err)
	}
	s.waitHealthy("payment")
	var ps []payment
	testenv.Eventually(t, settleTimeout, func() bool {
		ps = s.payments(p.OrderID)
		return len(ps) == 1 && ps[0].Status == "REFUNDED" && s.quiescent(ctx)
	}, "the stale payment was not refunded: %+v", &ps)
	if v := s.order(p.OrderID); v.Saga.Version != version || v.Saga.Status != "ABORTED" {
		t.Errorf("late replies moved the ended saga: version %d → %d, %s", version, v.Saga.Version, v.Saga.Status)
	}
	if got := s.openLimit(customer456); got != initialLimit {
		t.Errorf("openLimit = %d, want %d", got, initialLimit)
	}
}

// produce writes a message to topic as the relay would: key = saga id,
// header id = a new event id, header eventType.
func (s *system) produce(topic, sagaID, eventType string, value []byte) {
	s.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.AllowAutoTopicCreation())
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := &kgo.Record{Topic: topic, Key: []byte(sagaID), Value: value, Headers: []kgo.RecordHeader{
		{Key: "id", Value: []byte(uuid.NewString())}, {Key: "eventType", Value: []byte(eventType)},
	}}
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		s.t.Fatalf("produce to %s: %v", topic, err)
	}
}

// request is a request of saga sagaID as the order service writes it: with
// number sealed for the saga when given (the payment REQUEST), else no card.
func (s *system) request(sagaID string, orderID int64, due int64, number, typ string) []byte {
	s.t.Helper()
	sealed := ""
	if number != "" {
		var err error
		if sealed, err = s.keys.Seal(number, []byte(sagaID)); err != nil {
			s.t.Fatal(err)
		}
	}
	return fmt.Appendf(nil, `{"order-id":%d,"customer-id":456,"payment-due":%d,"credit-card-sealed":%q,"type":%q}`,
		orderID, due, sealed, typ)
}

// replies returns the statuses a participant replied for sagaID, in order.
func (s *system) replies(topic, sagaID string) []string {
	s.t.Helper()
	var out []string
	for _, r := range s.records(topic) {
		if string(r.Key) != sagaID {
			continue
		}
		var v struct{ Status string }
		_ = json.Unmarshal(r.Value, &v)
		out = append(out, v.Status)
	}
	return out
}

// Messages in every order the barrier cases know, produced straight to the
// topics after the sagas ended: a CANCEL before its REQUEST, a REQUEST
// again after its CANCEL, a REQUEST again after success, replies after the
// saga ended. The money stays exactly right and no saga moves.
func TestLateAndReorderedMessagesLeaveTheMoneyRight(t *testing.T) {
	t.Parallel()
	// The replies to the saga that never existed are waited for (it might
	// only not be visible yet), then parked: a second, not 30.
	s := startSystem(t, options{env: map[string]string{"SAGA_EARLY_REPLY_WAIT": "1s"}})
	ctx := context.Background()
	overLimit := s.placeOrder(requestFile(t, "place-invalid-order2.json")) // credit REJECTED, no payment step
	refused := s.placeOrder(requestFile(t, "place-invalid-order1.json"))   // payment FAILED, credit released
	accepted := s.placeOrder(requestFile(t, "place-order.json"))
	versions := map[int64]int{}
	for _, o := range []placed{overLimit, refused, accepted} {
		versions[o.OrderID] = s.waitSettled(o.OrderID, settleTimeout).Saga.Version
	}
	testenv.Eventually(t, settleTimeout, func() bool { return s.caughtUp(ctx) }, "consumers never caught up")
	unknown := uuid.NewString() // a saga the order service never started

	// Payment: a CANCEL, then its REQUEST, for a saga whose payment was
	// never requested.
	s.produce("payment.request", overLimit.SagaID, "CANCEL", s.request(overLimit.SagaID, overLimit.OrderID, 59999, "", "CANCEL"))
	s.produce("payment.request", overLimit.SagaID, "REQUEST", s.request(overLimit.SagaID, overLimit.OrderID, 59999, "1234-5678-0000-4242", "REQUEST"))
	// Customer: the REQUEST again after the CANCEL released it.
	s.produce("credit-approval.request", refused.SagaID, "REQUEST", s.request(refused.SagaID, refused.OrderID, 4999, "", "REQUEST"))
	// Customer: a CANCEL, then its REQUEST, for a saga it never saw.
	s.produce("credit-approval.request", unknown, "CANCEL", s.request(unknown, 99, 4999, "", "CANCEL"))
	s.produce("credit-approval.request", unknown, "REQUEST", s.request(unknown, 99, 4999, "", "REQUEST"))
	// Payment: the REQUEST again after success.
	s.produce("payment.request", accepted.SagaID, "REQUEST", s.request(accepted.SagaID, accepted.OrderID, 4999, "xxxx-yyyy-dddd-aaaa", "REQUEST"))
	// Order: replies after the saga ended.
	s.produce("payment.response", accepted.SagaID, "PaymentUpdated", []byte(`{"status":"FAILED"}`))
	s.produce("credit-approval.response", refused.SagaID, "CreditUpdated", []byte(`{"status":"APPROVED"}`))

	wantReplies := map[[2]string][]string{
		{"payment.response", overLimit.SagaID}: {"CANCELLED", "FAILED"},
		{"credit-approval.response", unknown}:  {"CANCELLED", "REJECTED"},
		// With the test's own replies, which may come before or after the
		// participant's: compared sorted.
		{"credit-approval.response", refused.SagaID}: {"APPROVED", "APPROVED", "CANCELLED", "REJECTED"},
		{"payment.response", accepted.SagaID}:        {"FAILED", "REQUESTED", "REQUESTED"},
	}
	sortedUnless := func(k [2]string, got []string) []string {
		if k[1] == refused.SagaID || k[1] == accepted.SagaID {
			slices.Sort(got)
		}
		return got
	}
	testenv.Eventually(t, settleTimeout, func() bool {
		for k, want := range wantReplies {
			if len(s.replies(k[0], k[1])) < len(want) {
				return false
			}
		}
		return s.quiescent(ctx)
	}, "replies never all consumed")
	for k, want := range wantReplies {
		if diff := cmp.Diff(want, sortedUnless(k, s.replies(k[0], k[1]))); diff != "" {
			t.Errorf("%s of saga %s (-want +got):\n%s", k[0], k[1], diff)
		}
	}

	// The money: only the accepted order holds credit and was charged.
	if got := s.openLimit(customer456); got != initialLimit-4999 {
		t.Errorf("openLimit = %d, want %d", got, initialLimit-4999)
	}
	for id, want := range map[int64][]payment{
		overLimit.OrderID: {}, // its CANCEL came first: a marker in the barrier, no payment
		refused.OrderID:   {{OrderID: refused.OrderID, Amount: 4999, Status: "FAILED"}},
		accepted.OrderID:  {{OrderID: accepted.OrderID, Amount: 4999, Status: "COMPLETED"}},
	} {
		if diff := cmp.Diff(want, s.payments(id)); diff != "" {
			t.Errorf("payments of order %d (-want +got):\n%s", id, diff)
		}
	}
	rows, err := s.dbs["customer"].Query(ctx, `SELECT saga_id::text, coalesce((record->>'amount')::bigint, 0), status
		FROM participant_step WHERE step = 'credit-approval'`)
	if err != nil {
		t.Fatal(err)
	}
	type alloc struct {
		Amount int64
		Status string
	}
	allocs := map[string]alloc{}
	for rows.Next() {
		var (
			id string
			a  alloc
		)
		if err := rows.Scan(&id, &a.Amount, &a.Status); err != nil {
			t.Fatal(err)
		}
		allocs[id] = a
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	wantAllocs := map[string]alloc{
		overLimit.SagaID: {0, "REFUSED"}, refused.SagaID: {4999, "UNDONE"}, accepted.SagaID: {4999, "DONE"}, unknown: {0, "CANCELLED"},
	}
	if diff := cmp.Diff(wantAllocs, allocs); diff != "" {
		t.Errorf("credit allocations (-want +got):\n%s", diff)
	}
	// No saga moved, no order changed.
	for _, o := range []placed{overLimit, refused, accepted} {
		v := s.order(o.OrderID)
		if v.Saga.Version != versions[o.OrderID] {
			t.Errorf("order %d: saga version %d → %d after it ended", o.OrderID, versions[o.OrderID], v.Saga.Version)
		}
	}
	if s.order(overLimit.OrderID).Status != "REJECTED" || s.order(refused.OrderID).Status != "REJECTED" || s.order(accepted.OrderID).Status != "ACCEPTED" {
		t.Error("an order changed status")
	}
}

// Two order-service instances run the sweeper at once over sagas whose
// payment deadlines pass: every deadline is acted on once, never early and
// never twice, whichever instance takes it.
func TestTwoOrderInstancesSweepEachDeadlineOnce(t *testing.T) {
	t.Parallel()
	env := shortDeadlines()
	s := startSystem(t, options{env: env})
	if err := s.stack.StopService("payment"); err != nil {
		t.Fatal(err)
	}
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	second := "http://127.0.0.1:" + strconv.Itoa(port)
	env2 := map[string]string{
		"DATABASE_URL":  s.dbs["order"].Config().ConnString(),
		"KAFKA_BROKERS": strings.Join(s.brokers, ","),
		"HTTP_ADDR":     "127.0.0.1:" + strconv.Itoa(port),
		"MIGRATE":       "false",
		"CARD_KEYS":     s.keysEnv,
	}
	for k, v := range env {
		env2[k] = v
	}
	var logs testenv.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- order.Run(ctx, func(k string) string { return env2[k] }, &logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("second order instance: %v", err)
		}
	})
	s.urls["order2"] = second
	s.waitHealthy("order2")

	const n = 6
	var orders []placed
	for i := range n {
		url := s.urls["order"]
		if i%2 == 1 {
			url = second
		}
		var p placed
		if code := s.do(http.MethodPost, url+"/orders", requestFile(t, "place-order.json"), &p); code != http.StatusAccepted {
			t.Fatalf("POST %s/orders = %d", url, code)
		}
		orders = append(orders, p)
	}
	testenv.Eventually(t, 2*settleTimeout, func() bool {
		for _, p := range orders {
			if v := s.order(p.OrderID); v.Status != "REJECTED" || v.Saga.StepStatus["credit-approval"] != "COMPENSATED" {
				return false
			}
		}
		return s.openLimit(customer456) == initialLimit
	}, "orders not all rejected with their credit released")
	for _, p := range orders {
		h := s.history(p.SagaID)
		checkDeadlines(t, p.SagaID, h)
		var retries, timeouts int
		for _, r := range h {
			switch {
			case r.Cause.Kind == "retry" && r.To == "STARTED":
				retries++
			case r.Cause.Kind == "timeout" && r.Step == "payment":
				timeouts++
			}
		}
		if retries != 1 || timeouts != 1 {
			t.Errorf("saga %s: %d request retries and %d timeouts, want 1 and 1", p.SagaID, retries, timeouts)
		}
		if got := s.requestTypes("payment.request", p.SagaID); len(got) < 3 || !cmp.Equal([]string{"REQUEST", "REQUEST", "CANCEL"}, got[:3]) {
			t.Errorf("saga %s: payment requests %v", p.SagaID, got)
		}
	}
	t.Logf("the second instance acted on %d deadlines", strings.Count(logs.String(), `"msg":"saga deadline passed"`))
}
