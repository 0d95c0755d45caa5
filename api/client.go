package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sagabox/sagabox/pkg/contract"
	"github.com/sagabox/sagabox/pkg/participant"
	"github.com/sagabox/sagabox/pkg/saga/sagaapi"
)

// Client calls one service, at any of its instances. A request goes to the
// first instance to which a connection can be made; it goes to the next
// only when no connection could be made (refused, unresolvable): a request
// that may have reached an instance — a timeout, a connection lost on the
// way back — is never sent to another, where an order would be placed
// twice. An answer, whatever its status, is final.
type Client struct {
	// Name names the service in errors ("order").
	Name string
	// URLs are the base URLs of its instances.
	URLs []string
	// Token is the bearer token sent with every request (the /admin APIs
	// need one); empty: none.
	Token string
	// HTTP is the client used; nil: one with a 10 s timeout.
	HTTP *http.Client
	// Check, when set, is given every answer; an error it returns is the
	// call's (the tests check every answer against the OpenAPI document).
	Check func(method, path string, status int, contentType string, body []byte) error
}

// Error is an answer other than 2xx: its status and its {"error": …}
// message.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// StatusOf returns the HTTP status of an *Error, 0 for another error (no
// answer).
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// Header is a request header of Do.
type Header struct{ Key, Value string }

var defaultHTTP = &http.Client{Timeout: 10 * time.Second}

// Do sends a request with a JSON body (nil: none) and headers, and decodes
// a 2xx JSON answer into out (nil: ignored). It returns the answer's
// headers.
func (c Client) Do(ctx context.Context, method, path string, body, out any, headers ...Header) (http.Header, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("%s %s: encode body: %w", method, path, err)
		}
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	var unreachable []error
	for _, base := range c.URLs {
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, bytes.NewReader(payload))
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		for _, h := range headers {
			req.Header.Set(h.Key, h.Value)
		}
		resp, err := hc.Do(req)
		if err != nil && notConnected(err) {
			unreachable = append(unreachable, err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s service: %s %s: %w", c.Name, method, path, err)
		}
		return resp.Header, c.answer(resp, method, path, out)
	}
	return nil, fmt.Errorf("%s service unreachable: %w", c.Name, errors.Join(unreachable...))
}

func (c Client) answer(resp *http.Response, method, path string, out any) error {
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s service: %s %s: read answer: %w", c.Name, method, path, err)
	}
	if c.Check != nil {
		if err := c.Check(method, path, resp.StatusCode, resp.Header.Get("Content-Type"), raw); err != nil {
			return fmt.Errorf("%s service: %s %s: the answer breaks the API's contract: %w", c.Name, method, path, err)
		}
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(raw))
		}
		return &Error{Status: resp.StatusCode, Message: e.Error}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s service: %s %s: decode answer: %w", c.Name, method, path, err)
		}
	}
	return nil
}

// notConnected reports a request that never reached its instance: no
// connection could be made.
func notConnected(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &dns) || errors.As(err, &op) && op.Op == "dial"
}

// Health checks every instance's /healthz: true for those answering 200.
func (c Client) Health(ctx context.Context) []bool {
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	out := make([]bool, len(c.URLs))
	for i, base := range c.URLs {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/healthz", nil)
		if err == nil {
			if resp, err := hc.Do(req); err == nil {
				resp.Body.Close()
				out[i] = resp.StatusCode == http.StatusOK
			}
		}
		cancel()
	}
	return out
}

// The order service.

// PlaceOrder places an order with an Idempotency-Key (none when key is
// ""); replayed reports an answer for a request sent before with the key.
func (c Client) PlaceOrder(ctx context.Context, o PlaceOrder, key string) (p Placed, replayed bool, err error) {
	var hs []Header
	if key != "" {
		hs = append(hs, Header{"Idempotency-Key", key})
	}
	h, err := c.Do(ctx, http.MethodPost, "/orders", o, &p, hs...)
	return p, h.Get("Idempotent-Replayed") == "true", err
}

// CancelOrder starts the cancellation of ACCEPTED order id.
func (c Client) CancelOrder(ctx context.Context, id int64) (Cancelling, error) {
	var out Cancelling
	_, err := c.Do(ctx, http.MethodPost, "/orders/"+strconv.FormatInt(id, 10)+"/cancel", nil, &out)
	return out, err
}

// Order reads order id and its saga.
func (c Client) Order(ctx context.Context, id int64) (Order, error) {
	var o Order
	_, err := c.Do(ctx, http.MethodGet, "/orders/"+strconv.FormatInt(id, 10), nil, &o)
	return o, err
}

// SagaState reads saga id (its payload masked) without a token.
func (c Client) SagaState(ctx context.Context, id uuid.UUID) (sagaapi.Saga, error) {
	var s sagaapi.Saga
	_, err := c.Do(ctx, http.MethodGet, "/sagas/"+id.String(), nil, &s)
	return s, err
}

// The saga operator API (/admin/sagas).

// Sagas lists sagas, newest first, filtered by q (see sagaapi).
func (c Client) Sagas(ctx context.Context, q url.Values) (sagaapi.List, error) {
	var l sagaapi.List
	_, err := c.Do(ctx, http.MethodGet, withQuery("/admin/sagas", q), nil, &l)
	return l, err
}

// Saga reads saga id with its history.
func (c Client) Saga(ctx context.Context, id uuid.UUID) (sagaapi.Detail, error) {
	var d sagaapi.Detail
	_, err := c.Do(ctx, http.MethodGet, "/admin/sagas/"+id.String(), nil, &d)
	return d, err
}

// SagaTypes lists the saga types the orchestrator runs.
func (c Client) SagaTypes(ctx context.Context) ([]sagaapi.Type, error) {
	var ts []sagaapi.Type
	_, err := c.Do(ctx, http.MethodGet, "/admin/sagas/types", nil, &ts)
	return ts, err
}

// SagaStats reads the sagas' statistics (q: window, bucket, type).
func (c Client) SagaStats(ctx context.Context, q url.Values) (sagaapi.Stats, error) {
	var s sagaapi.Stats
	_, err := c.Do(ctx, http.MethodGet, withQuery("/admin/sagas/stats", q), nil, &s)
	return s, err
}

// SagaAction runs an operator action (sagaapi.ActionAbort, ActionRetry,
// ActionCompensate) on saga id.
func (c Client) SagaAction(ctx context.Context, id uuid.UUID, action string, req sagaapi.ActionRequest) (sagaapi.Action, error) {
	var a sagaapi.Action
	_, err := c.Do(ctx, http.MethodPost, "/admin/sagas/"+id.String()+"/"+action, req, &a)
	return a, err
}

// Every service's platform APIs.

// Parked lists parked messages (q: status, after, limit).
func (c Client) Parked(ctx context.Context, q url.Values) (ParkedList, error) {
	var l ParkedList
	_, err := c.Do(ctx, http.MethodGet, withQuery("/admin/parked", q), nil, &l)
	return l, err
}

// ReplayParked replays parked message id.
func (c Client) ReplayParked(ctx context.Context, id int64, reason string) (ParkedMessage, error) {
	var p ParkedMessage
	_, err := c.Do(ctx, http.MethodPost, "/admin/parked/"+strconv.FormatInt(id, 10)+"/replay", Reason{reason}, &p)
	return p, err
}

// ReplayAllParked replays every parked message, in order.
func (c Client) ReplayAllParked(ctx context.Context, reason string) (ReplayAll, error) {
	var r ReplayAll
	_, err := c.Do(ctx, http.MethodPost, "/admin/parked/replay", Reason{reason}, &r)
	return r, err
}

// Messaging reads the service database's messaging state.
func (c Client) Messaging(ctx context.Context) (Messaging, error) {
	var m Messaging
	_, err := c.Do(ctx, http.MethodGet, "/admin/messaging", nil, &m)
	return m, err
}

// Participants.

// Steps lists the steps a participant serves.
func (c Client) Steps(ctx context.Context) ([]contract.Info, error) {
	var s []contract.Info
	_, err := c.Do(ctx, http.MethodGet, "/steps", nil, &s)
	return s, err
}

// StepRecord reads what step did for saga id.
func (c Client) StepRecord(ctx context.Context, step string, id uuid.UUID) (participant.Record, error) {
	var r participant.Record
	_, err := c.Do(ctx, http.MethodGet, "/steps/"+url.PathEscape(step)+"/"+id.String(), nil, &r)
	return r, err
}

// Customer reads a customer's open limit (the customer service).
func (c Client) Customer(ctx context.Context, id int64) (Customer, error) {
	var cu Customer
	_, err := c.Do(ctx, http.MethodGet, "/customers/"+strconv.FormatInt(id, 10), nil, &cu)
	return cu, err
}

// Payments lists an order's payments (the payment service).
func (c Client) Payments(ctx context.Context, orderID int64) ([]Payment, error) {
	var ps []Payment
	_, err := c.Do(ctx, http.MethodGet, "/payments?orderId="+strconv.FormatInt(orderID, 10), nil, &ps)
	return ps, err
}

func withQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
