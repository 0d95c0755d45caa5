package apitest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/api"
	"github.com/sagabox/sagabox/api/apitest"
	"github.com/sagabox/sagabox/contracts"
	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/contract"
	"github.com/sagabox/sagabox/pkg/outbox"
	"github.com/sagabox/sagabox/pkg/participant"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/pkg/saga/sagaapi"
)

const (
	jsonType = "application/json"
	sagaID   = "0b7e5a52-4f1e-4c35-9d3a-6c1f0e2b8a11"
)

// sagaJSON is a saga as the order service shows it in a list or detail:
// masked payload, a deadline while it waits.
const sagaJSON = `{"id":"` + sagaID + `","type":"order-placement","definitionVersion":1,"status":"STARTED","currentStep":"payment",
	"stepStatus":{"credit-approval":"SUCCEEDED","payment":"STARTED"},
	"waits":{"payment":{"attempt":1,"deadline":"2025-03-01T10:00:30.123Z"}},"attempt":1,
	"deadline":"2025-03-01T10:00:30.123Z","statusSince":"2025-03-01T10:00:00Z","version":2,
	"payload":{"order-id":7,"customer-id":456,"payment-due":4999,"credit-card-sealed":"v1.k2.…"},
	"createdAt":"2025-03-01T10:00:00Z","updatedAt":"2025-03-01T10:00:00.5Z"}`

// parkedJSON is a parked message after a replay.
const parkedJSON = `{"id":12,"consumer":"customer-service","topic":"credit-approval.request",
	"topicId":"5d1c3e2a-7a53-4b8f-9f0e-2b9c8d7e6f50","partition":0,"offset":341,
	"eventId":"9a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d","key":"` + sagaID + `",
	"headers":{"eventType":"REQUEST","id":"9a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d"},
	"error":"decode request: unknown field","parkedAt":"2025-03-01T10:00:01.5Z","status":"REPLAYED",
	"replayAttempts":1,"replayedAt":"2025-03-01T11:00:00Z","replayedBy":"alice","replayReason":"fixed the schema",
	"replayOutcome":"applied","value":"{\"type\":\"REQUEST\",\"order-id\":7}"}`

func TestCheckAcceptsDocumentedAnswers(t *testing.T) {
	t.Parallel()
	c := apitest.Must(t)
	tests := []struct {
		name, method, path string
		status             int
		contentType, body  string
	}{
		{"placed", "POST", "/orders", 202, "application/json; charset=utf-8",
			`{"orderId":7,"sagaId":"` + sagaID + `","status":"CREATED"}`},
		{"order", "GET", "/orders/7", 200, jsonType, `{"orderId":7,"customerId":456,"itemId":3,"quantity":2,
			"paymentDue":4999,"creditCardLast4":"4242","status":"ACCEPTED",
			"saga":{"id":"` + sagaID + `","type":"order-placement","definitionVersion":2,"status":"SUCCEEDED","currentStep":"payment",
			"stepStatus":{"credit-approval":"SUCCEEDED","payment":"SUCCEEDED"},"attempt":0,
			"statusSince":"2025-03-01T10:00:01.2Z","version":4,"createdAt":"2025-03-01T10:00:00Z",
			"updatedAt":"2025-03-01T10:00:01.2Z"}}`},
		{"saga", "GET", "/sagas/" + sagaID, 200, jsonType, sagaJSON},
		{"detail with orderId", "GET", "/admin/sagas/" + sagaID, 200, jsonType, `{"saga":` + sagaJSON + `,
			"history":[
			{"id":1,"version":0,"at":"2025-03-01T10:00:00Z","step":"credit-approval","from":"","to":"STARTED",
			 "sagaStatus":"STARTED","attempt":0,"deadline":"2025-03-01T10:00:30Z","cause":{"kind":"start"}},
			{"id":2,"version":1,"at":"2025-03-01T10:00:00.2Z","step":"credit-approval","from":"STARTED",
			 "to":"SUCCEEDED","sagaStatus":"STARTED","attempt":0,"cause":{"kind":"reply",
			 "eventId":"1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b","topic":"credit-approval.response",
			 "eventType":"CreditUpdated"}},
			{"id":3,"version":2,"at":"2025-03-01T10:00:30.1Z","step":"payment","from":"STARTED","to":"STARTED",
			 "sagaStatus":"STARTED","attempt":1,"deadline":"2025-03-01T10:01:30Z","cause":{"kind":"operator",
			 "actor":"alice","action":"retry","reason":"payment service restarted"}}],
			"orderId":7}`},
		{"detail without an order", "GET", "/admin/sagas/" + sagaID, 200, jsonType,
			`{"saga":` + sagaJSON + `,"history":[]}`},
		{"list", "GET", "/admin/sagas?status=started&limit=1", 200, jsonType,
			`{"sagas":[` + sagaJSON + `],"next":"MTc0MDgyMzIwMDAwMDAwMC4wYjdl"}`},
		{"last page", "GET", "/admin/sagas", 200, jsonType, `{"sagas":[]}`},
		{"stats", "GET", "/admin/sagas/stats?window=2m", 200, jsonType, `{"at":"2025-03-01T10:01:59.9Z",
			"window":"2m0s","bucket":"1m0s","now":{"STARTED":1,"SUCCEEDED":40,"ABORTING":0,"ABORTED":3},
			"stuck":0,"buckets":[{"start":"2025-03-01T10:01:00Z","started":5,"succeeded":4,"aborted":1},
			{"start":"2025-03-01T10:02:00Z","started":0,"succeeded":0,"aborted":0}],"ended":5,
			"p50Ms":412.5,"p99Ms":1803,"unknownVersion":0}`},
		{"types", "GET", "/admin/sagas/types", 200, jsonType, `[{"type":"order-placement","version":1,"latest":true,"steps":[
			{"name":"credit-approval","after":[],"compensable":true,"timeout":"30s","retries":3},
			{"name":"payment","after":["credit-approval"],"compensable":true,"retries":0}]},
			{"type":"order-cancellation","version":1,"latest":true,"forwardOnly":true,"steps":[
			{"name":"payment-refund","after":[],"compensable":false,"retries":3},
			{"name":"credit-release","after":[],"compensable":false,"retries":3}]}]`},
		{"action", "POST", "/admin/sagas/" + sagaID + "/abort", 200, jsonType, `{"saga":` + sagaJSON + `}`},
		{"participant record", "GET", "/steps/credit-approval/" + sagaID, 200, jsonType,
			`{"step":"credit-approval","sagaId":"` + sagaID + `","status":"DONE",
			"record":{"customerId":456,"orderId":7,"amount":4999},
			"createdAt":"2025-03-01T10:00:00.1+01:00","updatedAt":"2025-03-01T10:00:00.1+01:00"}`},
		{"participant record without one", "GET", "/steps/payment/" + sagaID, 200, jsonType,
			`{"step":"payment","sagaId":"` + sagaID + `","status":"CANCELLED",
			"createdAt":"2025-03-01T10:00:00Z","updatedAt":"2025-03-01T10:00:00Z"}`},
		{"steps", "GET", "/steps", 200, jsonType, `[{"name":"payment","replyType":"PaymentUpdated",
			"succeeded":"REQUESTED","failed":"FAILED","cancelled":"CANCELLED"}]`},
		{"parked list", "GET", "/admin/parked?status=all", 200, jsonType, `{"parked":[` + parkedJSON + `,
			{"id":13,"consumer":"customer-service","topic":"credit-approval.request","partition":2,"offset":9,
			"key":"\ufffd","headers":{},"error":"message has no \"id\" header","parkedAt":"2025-03-01T10:05:00Z",
			"status":"PARKED","replayAttempts":0,"value":""}],"next":"13"}`},
		{"replayed", "POST", "/admin/parked/12/replay", 200, jsonType, parkedJSON},
		{"replay all", "POST", "/admin/parked/replay", 200, jsonType,
			`{"replayed":[{"id":12,"outcome":"duplicate"}],"failed":[{"id":13,"error":"replay parked message 13: boom"}]}`},
		{"messaging", "GET", "/admin/messaging", 200, jsonType, `{"outbox":{"rows":3,"oldest":"2025-03-01T09:00:00Z"},
			"parked":1,"slots":[{"name":"relay_order","active":true,"lagBytes":0,"retainedBytes":56}]}`},
		{"messaging, empty outbox", "GET", "/admin/messaging", 200, jsonType,
			`{"outbox":{"rows":0},"parked":0,"slots":[]}`},
		{"healthy", "GET", "/healthz", 200, jsonType, `{"database":"ok","kafka":"ok"}`},
		{"unhealthy", "GET", "/healthz", 503, jsonType, `{"database":"ok","kafka":"context deadline exceeded"}`},
		{"customer", "GET", "/customers/456", 200, jsonType, `{"id":456,"openLimit":1500}`},
		{"payments", "GET", "/payments?orderId=7", 200, jsonType, `[{"id":1,"sagaId":"` + sagaID + `","orderId":7,
			"customerId":456,"amount":4999,"creditCardLast4":"4242","status":"REFUNDED",
			"createdAt":"2025-03-01T10:00:00.654321Z"}]`},
		{"no payments", "GET", "/payments?orderId=8", 200, jsonType, `[]`},
		{"metrics", "GET", "/metrics", 200, "text/plain; version=0.0.4; charset=utf-8; escaping=underscores",
			"# TYPE up gauge\nup 1\n"},
		{"this document", "GET", "/openapi.json", 200, jsonType, string(api.OpenAPI())},
		{"error", "GET", "/orders/999", 404, jsonType, `{"error":"not found"}` + "\n"},
		{"unauthorized", "GET", "/admin/sagas/stats", 401, jsonType, `{"error":"missing or invalid bearer token"}`},
		{"reader's token", "POST", "/admin/parked/replay", 403, jsonType,
			`{"error":"the token console only reads: an action needs an operator's token"}`},
		{"busy", "POST", "/orders", 503, jsonType, `{"error":"too many requests in progress; retry later"}`},
		{"key reused", "POST", "/orders", 422, jsonType,
			`{"error":"Idempotency-Key was used for a different order: use a new key for a new order"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := c.Check(tt.method, tt.path, tt.status, tt.contentType, []byte(tt.body)); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

func TestCheckRejectsWhatTheDocumentDoesNotSay(t *testing.T) {
	t.Parallel()
	c := apitest.Must(t)
	placed := `{"orderId":7,"sagaId":"` + sagaID + `","status":"CREATED"}`
	tests := []struct {
		name, method, path string
		status             int
		contentType, body  string
		want               error
		wantMsg            []string // in the error, besides method, path and status
	}{
		{"wrong type", "POST", "/orders", 202, jsonType, `{"orderId":"7","sagaId":"` + sagaID + `","status":"CREATED"}`,
			apitest.ErrInvalidBody, []string{"#/components/schemas/Placed", "/orderId", "want integer"}},
		{"missing required field", "POST", "/orders", 202, jsonType, `{"orderId":7,"status":"CREATED"}`,
			apitest.ErrInvalidBody, []string{"sagaId"}},
		{"unknown field", "GET", "/customers/456", 200, jsonType, `{"id":456,"openLimit":1500,"name":"Ada"}`,
			apitest.ErrInvalidBody, []string{"#/components/schemas/Customer", "name"}},
		{"unknown field deep down", "GET", "/admin/sagas/" + sagaID, 200, jsonType,
			`{"saga":` + strings.Replace(sagaJSON, `"version":2`, `"version":2,"owner":"bob"`, 1) + `,"history":[]}`,
			apitest.ErrInvalidBody, []string{"/saga", "owner"}},
		{"status outside the enum", "GET", "/sagas/" + sagaID, 200, jsonType,
			strings.Replace(sagaJSON, `"status":"STARTED"`, `"status":"RUNNING"`, 1),
			apitest.ErrInvalidBody, []string{"/status"}},
		{"not a uuid", "POST", "/orders", 202, jsonType, `{"orderId":7,"sagaId":"42","status":"CREATED"}`,
			apitest.ErrInvalidBody, []string{"/sagaId", "uuid"}},
		{"not a date-time", "GET", "/payments?orderId=7", 200, jsonType, `[{"id":1,"sagaId":"` + sagaID + `",
			"orderId":7,"customerId":456,"amount":4999,"creditCardLast4":"4242","status":"COMPLETED",
			"createdAt":"yesterday"}]`, apitest.ErrInvalidBody, []string{"/0/createdAt", "date-time"}},
		{"past int32", "GET", "/admin/parked", 200, jsonType,
			`{"parked":[` + strings.Replace(parkedJSON, `"partition":0`, `"partition":2147483648`, 1) + `]}`,
			apitest.ErrInvalidBody, []string{"/parked/0/partition", "int32"}},
		{"error without its message", "GET", "/orders/999", 404, jsonType, `{"message":"not found"}`,
			apitest.ErrInvalidBody, []string{"#/components/schemas/Error"}},
		{"not JSON", "GET", "/orders/999", 404, jsonType, `not found`,
			apitest.ErrInvalidBody, []string{"not JSON"}},
		{"two JSON values", "POST", "/orders", 202, jsonType, placed + placed,
			apitest.ErrInvalidBody, []string{"not JSON"}},
		{"undocumented status", "GET", "/orders/7", 401, jsonType, `{"error":"no"}`,
			apitest.ErrUndocumentedStatus, []string{"200, 404, 500, 503"}},
		{"a reader's token cannot be refused a read", "GET", "/admin/parked", 403, jsonType, `{"error":"no"}`,
			apitest.ErrUndocumentedStatus, nil},
		{"undocumented path", "POST", "/orders/7/refund", 200, jsonType, `{}`, apitest.ErrUndocumentedPath, nil},
		{"empty segment", "GET", "/orders/", 200, jsonType, `{}`, apitest.ErrUndocumentedPath, nil},
		{"trailing slash", "GET", "/admin/sagas/stats/", 200, jsonType, `{}`, apitest.ErrUndocumentedPath, nil},
		{"undocumented method", "DELETE", "/orders/7", 200, jsonType, `{}`,
			apitest.ErrUndocumentedMethod, []string{"/orders/{id} has GET"}},
		{"undocumented content type", "GET", "/orders/7", 404, "text/plain; charset=utf-8", "404 page not found\n",
			apitest.ErrUndocumentedContentType, []string{"text/plain"}},
		{"stats is not a saga id", "GET", "/admin/sagas/stats", 200, jsonType, `{"saga":` + sagaJSON + `,"history":[]}`,
			apitest.ErrInvalidBody, []string{"(/admin/sagas/stats)", "#/components/schemas/Stats"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := c.Check(tt.method, tt.path, tt.status, tt.contentType, []byte(tt.body))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
			for _, s := range append([]string{tt.method + " " + tt.path}, tt.wantMsg...) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Check = %q, want it to name %q", err, s)
				}
			}
			if tt.want != apitest.ErrUndocumentedPath && tt.want != apitest.ErrUndocumentedMethod &&
				!strings.Contains(err.Error(), fmt.Sprintf("status %d", tt.status)) {
				t.Errorf("Check = %q, want it to name the status", err)
			}
		})
	}
}

// The Go types the handlers encode, marshalled as they are, match the
// document: sparse (every omitempty field empty) and full.
func TestHandlersTypesMatchTheDocument(t *testing.T) {
	t.Parallel()
	c := apitest.Must(t)
	at := time.Date(2025, 3, 1, 10, 0, 0, 123e6, time.UTC)
	id := uuid.MustParse(sagaID)
	sparse := sagaapi.Saga{ID: id, Type: "order-placement", DefinitionVersion: 1, Status: saga.StatusSucceeded, CurrentStep: "payment",
		StepStatus:  map[string]saga.StepStatus{"credit-approval": saga.StepSucceeded, "payment": saga.StepSucceeded},
		StatusSince: at, Version: 4, CreatedAt: at, UpdatedAt: at}
	full := sparse
	full.Status, full.Attempt, full.Deadline, full.UnknownVersion = saga.StatusAborting, 2, &at, true
	full.Waits = map[string]sagaapi.Wait{"credit-approval": {Attempt: 2, Deadline: &at}}
	full.StepStatus = map[string]saga.StepStatus{"credit-approval": saga.StepCompensating, "payment": saga.StepAbandoned}
	full.Payload = json.RawMessage(`{"order-id":7,"customer-id":456,"payment-due":4999}`)
	history := []sagaapi.History{
		{ID: 1, At: at, Step: "credit-approval", To: saga.StepStarted, SagaStatus: saga.StatusStarted,
			Cause: saga.Cause{Kind: saga.CauseStart}},
		{ID: 2, Version: 3, At: at, Step: "payment", From: saga.StepStarted, To: saga.StepAbandoned,
			SagaStatus: saga.StatusAborting, Attempt: 2, Deadline: &at,
			Cause: saga.Cause{Kind: saga.CauseOperator, Actor: "alice", Action: sagaapi.ActionAbort, Reason: "stuck"}},
		{ID: 3, Version: 4, At: at, Step: "credit-approval", From: saga.StepCompensating, To: saga.StepCompensated,
			SagaStatus: saga.StatusAborted, Cause: saga.Cause{Kind: saga.CauseReply, EventID: uuid.New(),
				Topic: "credit-approval.response", EventType: "CreditUpdated"}},
	}
	parked := consumer.Parked{ID: 12, Consumer: "payment-service", Topic: "payment.request", Key: sagaID,
		Headers: map[string]string{}, Error: "boom", ParkedAt: at, Status: consumer.ParkedWaiting}
	replayed := parked
	replayed.TopicID, replayed.EventID, replayed.ReplayedAt = &id, &id, &at
	replayed.Status, replayed.ReplayAttempts, replayed.ReplayedBy = consumer.ParkedReplayed, 1, "alice"
	replayed.ReplayReason, replayed.ReplayOutcome = "fixed", consumer.OutcomeApplied

	tests := []struct {
		method, path string
		status       int
		v            any
	}{
		{"POST", "/orders", 202, api.Placed{OrderID: 7, SagaID: id, Status: "CREATED"}},
		{"GET", "/orders/7", 200, api.Order{OrderID: 7, CustomerID: 456, ItemID: 3, Quantity: 2, PaymentDue: 4999,
			CardLast4: "4242", Status: "CREATED", Saga: sparse}},
		{"GET", "/sagas/" + sagaID, 200, sparse},
		{"GET", "/sagas/" + sagaID, 200, full},
		{"GET", "/admin/sagas", 200, sagaapi.List{Sagas: []sagaapi.Saga{}}},
		{"GET", "/admin/sagas", 200, sagaapi.List{Sagas: []sagaapi.Saga{sparse, full}, Next: "abc"}},
		{"GET", "/admin/sagas/" + sagaID, 200, sagaapi.Detail{Saga: full, History: history}},
		{"GET", "/admin/sagas/" + sagaID, 200, sagaapi.Detail{Saga: full, History: history,
			Extra: map[string]json.RawMessage{"orderId": json.RawMessage(`7`)}}},
		{"POST", "/admin/sagas/" + sagaID + "/compensate", 200, sagaapi.Action{Saga: full}},
		{"GET", "/admin/sagas/stats", 200, sagaapi.Stats{At: at, Window: "15m0s", Bucket: "1m0s",
			Now:     map[saga.Status]int64{saga.StatusStarted: 1, saga.StatusSucceeded: 2, saga.StatusAborting: 0, saga.StatusAborted: 0},
			Buckets: []sagaapi.Bucket{{Start: at, Started: 1}}, P50Ms: 0.25}},
		{"GET", "/admin/sagas/types", 200, []sagaapi.Type{{Type: "order-placement", Version: 1, Latest: true, Steps: []sagaapi.Step{
			{Name: "credit-approval", After: []string{}, Compensable: true, Timeout: "30s", Retries: 3},
			{Name: "payment", After: []string{"credit-approval"}}}}}},
		{"GET", "/admin/parked", 200, api.ParkedList{Parked: []api.ParkedMessage{}}},
		{"GET", "/admin/parked", 200, api.ParkedList{Parked: []api.ParkedMessage{{Parked: parked, Value: "{}"},
			{Parked: replayed}}, Next: "12"}},
		{"POST", "/admin/parked/12/replay", 200, api.ParkedMessage{Parked: replayed, Value: "{}"}},
		{"POST", "/admin/parked/replay", 200, api.ReplayAll{Replayed: []api.ReplayResult{}, Failed: []api.ReplayResult{}}},
		{"POST", "/admin/parked/replay", 200, api.ReplayAll{
			Replayed: []api.ReplayResult{{ID: 1, Outcome: consumer.OutcomeDuplicate}},
			Failed:   []api.ReplayResult{{ID: 2, Error: "boom"}}}},
		{"GET", "/admin/messaging", 200, api.Messaging{Slots: []outbox.Slot{}}},
		{"GET", "/admin/messaging", 200, api.Messaging{Outbox: outbox.Backlog{Rows: 2, Oldest: at}, Parked: 1,
			Slots: []outbox.Slot{{Name: "relay", Active: true, LagBytes: 10, RetainedBytes: 20}}}},
		{"GET", "/steps", 200, []contract.Info{contracts.CreditApproval().Info(), contracts.Payment().Info()}},
		{"GET", "/steps/payment/" + sagaID, 200, participant.Record{Step: "payment", SagaID: id,
			Status: participant.StatusCancelled, CreatedAt: at, UpdatedAt: at}},
		{"GET", "/steps/payment/" + sagaID, 200, participant.Record{Step: "payment", SagaID: id,
			Status: participant.StatusUndone, Record: json.RawMessage(`{"paymentId":1,"orderId":7,"amount":4999,"cardLast4":"4242"}`),
			CreatedAt: at, UpdatedAt: at}},
		{"GET", "/customers/456", 200, api.Customer{ID: 456, OpenLimit: 1500}},
		{"GET", "/payments?orderId=7", 200, []api.Payment{{ID: 1, SagaID: id, OrderID: 7, CustomerID: 456,
			Amount: 4999, CardLast4: "4242", Status: "FAILED", CreatedAt: at}}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s %T", tt.method, tt.path, tt.v), func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Check(tt.method, tt.path, tt.status, jsonType, b); err != nil {
				t.Errorf("%s\n%v", b, err)
			}
		})
	}
}

// Answers of the real handlers that need no database: the saga operator
// API's and the participants'.
func TestRealHandlersAnswerAsDocumented(t *testing.T) {
	t.Parallel()
	c := apitest.Must(t)
	type payload struct {
		OrderID int64 `json:"order-id"`
	}
	def := saga.Define("order-placement",
		saga.Call(contracts.CreditApproval(), func(p payload) (contracts.CreditRequest, error) {
			return contracts.CreditRequest{OrderID: p.OrderID}, nil
		}).Deadline(saga.Deadline{Timeout: 30 * time.Second, Retries: 3}),
		saga.Call(contracts.Payment(), func(p payload) (contracts.PaymentRequest, error) {
			return contracts.PaymentRequest{OrderID: p.OrderID}, nil
		}))
	orch, err := saga.New(saga.Config{Definitions: []saga.Definition{def}})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	p, err := participant.New(log, participant.Step[contracts.CreditRequest, struct{}]{
		Contract: contracts.CreditApproval(),
		Do: func(context.Context, pgx.Tx, participant.Call[contracts.CreditRequest]) (struct{}, bool, error) {
			return struct{}{}, true, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	// No database: only the answers given before one is needed.
	r.Mount("/admin/sagas", sagaapi.API{Orchestrator: orch, Actor: func(*http.Request) string { return "alice" },
		Log: log}.Routes())
	r.Mount("/steps", p.Routes(fakeDB{}, log))
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)

	tests := []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/admin/sagas/types", "", 200},
		{"GET", "/admin/sagas/not-a-uuid", "", 400},
		{"GET", "/admin/sagas?status=RUNNING&limit=0&owner=bob", "", 400},
		{"GET", "/admin/sagas/stats?window=1s&bucket=1m", "", 400},
		{"POST", "/admin/sagas/" + sagaID + "/abort", `{"reason":""}`, 400},
		{"POST", "/admin/sagas/" + sagaID + "/abort", `{"reason":"x","why":"y"}`, 400},
		{"POST", "/admin/sagas/" + sagaID + "/compensate", `{"step":"shipping","reason":"done by hand"}`, 400},
		{"POST", "/admin/sagas/" + sagaID + "/retry", `{"reason":"` + strings.Repeat("x", sagaapi.MaxBody) + `"}`, 413},
		{"GET", "/steps", "", 200},
		{"GET", "/steps/credit-approval/" + sagaID, "", 200},
		{"GET", "/steps/credit-approval/" + uuid.Nil.String(), "", 404},
		{"GET", "/steps/shipping/" + sagaID, "", 404},
		{"GET", "/steps/credit-approval/42", "", 400},
		{"GET", "/steps/credit-approval/" + failingSaga, "", 500},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.want)
			}
			if err := c.Check(tt.method, tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), body); err != nil {
				t.Errorf("%s\n%v", body, err)
			}
		})
	}
}

// failingSaga is a saga whose lookup fails in fakeDB.
const failingSaga = "ffffffff-ffff-4fff-bfff-ffffffffffff"

// fakeDB answers the participant's lookup: a DONE record for every saga
// but the nil one (none) and failingSaga (an error).
type fakeDB struct{}

func (fakeDB) QueryRow(_ context.Context, _ string, args ...any) pgx.Row {
	return fakeRow{step: args[0].(string), id: args[1].(uuid.UUID)}
}

type fakeRow struct {
	step string
	id   uuid.UUID
}

func (r fakeRow) Scan(dest ...any) error {
	switch r.id.String() {
	case uuid.Nil.String():
		return pgx.ErrNoRows
	case failingSaga:
		return errors.New("connection reset")
	}
	at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.FixedZone("", 3600))
	vals := []any{r.step, r.id, participant.StatusDone, json.RawMessage(`{"customerId":456,"orderId":7,"amount":4999}`), at, at}
	for i, d := range dest {
		reflect.ValueOf(d).Elem().Set(reflect.ValueOf(vals[i]))
	}
	return nil
}

// doc is the document as plain JSON, for the tests of its own shape.
func doc(t *testing.T) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(api.OpenAPI(), &d); err != nil {
		t.Fatalf("OpenAPI document: %v", err)
	}
	return d
}

func TestEveryRefResolves(t *testing.T) {
	t.Parallel()
	d := doc(t)
	refs := 0
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"]; ok {
				refs++
				s, _ := ref.(string)
				if _, err := resolve(d, s); err != nil {
					t.Errorf("%s: %v", at, err)
				}
			}
			for k, e := range v {
				walk(e, at+"/"+k)
			}
		case []any:
			for i, e := range v {
				walk(e, fmt.Sprintf("%s/%d", at, i))
			}
		}
	}
	walk(d, "")
	if refs == 0 {
		t.Fatal("no $ref in the document")
	}
}

// resolve follows a reference within the document.
func resolve(d map[string]any, ref string) (any, error) {
	ptr, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("$ref %q: not within the document", ref)
	}
	var v any = d
	for _, tok := range strings.Split(ptr, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("$ref %q: resolves nowhere", ref)
		}
		if v, ok = m[tok]; !ok {
			return nil, fmt.Errorf("$ref %q: resolves nowhere", ref)
		}
	}
	return v, nil
}

// Every operation describes its answers: a body schema for at least one of
// them (but the metrics', which are text), every JSON body by $ref, a tag
// of the six and the service that serves it; every /admin operation its
// token and its refusal.
func TestEveryOperationIsDescribed(t *testing.T) {
	t.Parallel()
	d := doc(t)
	tags := []string{"order", "sagas", "platform", "participant", "customer", "payment"}
	ops := 0
	for path, item := range d["paths"].(map[string]any) {
		for method, v := range item.(map[string]any) {
			if method == "servers" || method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			ops++
			op := v.(map[string]any)
			name := strings.ToUpper(method) + " " + path
			withSchema := 0
			for status, r := range op["responses"].(map[string]any) {
				content, _ := r.(map[string]any)["content"].(map[string]any)
				for mt, m := range content {
					sch, ok := m.(map[string]any)["schema"].(map[string]any)
					if !ok {
						continue
					}
					withSchema++
					if _, ok := sch["$ref"]; !ok && mt == jsonType {
						t.Errorf("%s %s: the body schema is not a $ref", name, status)
					}
				}
			}
			if withSchema == 0 && name != "GET /metrics" {
				t.Errorf("%s: no response has a schema", name)
			}
			if got, _ := op["tags"].([]any); len(got) != 1 || !slices.Contains(tags, got[0].(string)) {
				t.Errorf("%s: tags %v, want one of %v", name, got, tags)
			}
			if desc, _ := op["description"].(string); !strings.HasPrefix(desc, "Served by ") {
				t.Errorf("%s: the description does not say which service serves it", name)
			}
			if strings.HasPrefix(path, "/admin/") {
				responses := op["responses"].(map[string]any)
				if op["security"] == nil || responses["401"] == nil {
					t.Errorf("%s: an admin operation without its bearer token or 401", name)
				}
				if (method == "post") != (responses["403"] != nil) {
					t.Errorf("%s: 403 is the answer to a reader's token on an action, and only that", name)
				}
			}
		}
	}
	if ops != 22 {
		t.Errorf("%d operations, want 22", ops)
	}
}

func TestNewRefusesBrokenDocuments(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"not JSON":     `{`,
		"OpenAPI 3.0":  `{"openapi":"3.0.3","info":{"title":"x","version":"1"},"paths":{}}`,
		"no paths":     `{"openapi":"3.1.0","info":{"title":"x","version":"1"}}`,
		"dangling ref": `{"openapi":"3.1.0","info":{"title":"x","version":"1"},"paths":{"/x":{"get":{"responses":{"200":{"description":"x","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Nope"}}}}}}}}}`,
		"bad schema":   `{"openapi":"3.1.0","info":{"title":"x","version":"1"},"paths":{"/x":{"get":{"responses":{"200":{"description":"x","content":{"application/json":{"schema":{"type":"thing"}}}}}}}}}`,
		"bad status":   `{"openapi":"3.1.0","info":{"title":"x","version":"1"},"paths":{"/x":{"get":{"responses":{"OK":{"description":"x"}}}}}}`,
	}
	for name, d := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := apitest.New([]byte(d)); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}

// A response given by reference, and status ranges, are what the document
// may use besides: New and Check follow them.
func TestResponseRefsAndRanges(t *testing.T) {
	t.Parallel()
	c, err := apitest.New([]byte(`{"openapi":"3.1.0","info":{"title":"x","version":"1"},
		"paths":{"/things/{id}":{"get":{"responses":{
			"200":{"$ref":"#/components/responses/Thing"},
			"4XX":{"description":"x","content":{"application/problem+json":{"schema":{"type":"object","required":["title"]}}}},
			"default":{"description":"x"}}}}},
		"components":{"responses":{"Thing":{"description":"x","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Thing"}}}}},
			"schemas":{"Thing":{"type":"object","required":["id"],"properties":{"id":{"type":"integer","format":"int64"}}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		status      int
		contentType string
		body        string
		ok          bool
	}{
		{200, jsonType, `{"id":1}`, true},
		{200, jsonType, `{"id":9223372036854775808}`, false},
		{200, jsonType, `{}`, false},
		{404, "application/problem+json", `{"title":"gone"}`, true},
		{404, "application/problem+json", `{}`, false},
		{500, "", "", true},
		{500, "text/plain", "boom", false},
	} {
		err := c.Check("GET", "/things/1", tt.status, tt.contentType, []byte(tt.body))
		if (err == nil) != tt.ok {
			t.Errorf("Check(%d, %s, %s) = %v, want ok %v", tt.status, tt.contentType, tt.body, err, tt.ok)
		}
	}
}
