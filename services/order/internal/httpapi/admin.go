package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/services/order/internal/app"
)

// adminRoutes are the operator's saga API, mounted under /admin behind
// platform.RequireAdmin.
func (h handlers) adminRoutes(r chi.Router) {
	r.Get("/sagas", h.listSagas)
	r.Get("/sagas/stats", h.sagaStats)
	r.Get("/sagas/{id}", h.sagaDetail)
	r.Post("/sagas/{id}/abort", h.abortSaga)
	r.Post("/sagas/{id}/retry", h.retrySaga)
	r.Post("/sagas/{id}/compensate", h.compensateStep)
}

type sagaListResponse struct {
	Sagas []sagaResponse `json:"sagas"`
	// Next continues the listing (query parameter after), absent on the
	// last page.
	Next string `json:"next,omitempty"`
}

type historyResponse struct {
	ID         int64           `json:"id"`
	Version    int             `json:"version"`
	At         string          `json:"at"`
	Step       string          `json:"step"`
	From       saga.StepStatus `json:"from"`
	To         saga.StepStatus `json:"to"`
	SagaStatus saga.Status     `json:"sagaStatus"`
	Attempt    int             `json:"attempt"`
	Deadline   string          `json:"deadline,omitempty"`
	Cause      causeResponse   `json:"cause"`
}

type causeResponse struct {
	Kind      saga.CauseKind `json:"kind"`
	EventID   string         `json:"eventId,omitempty"`
	Topic     string         `json:"topic,omitempty"`
	EventType string         `json:"eventType,omitempty"`
	Actor     string         `json:"actor,omitempty"`
	Action    string         `json:"action,omitempty"`
	Reason    string         `json:"reason,omitempty"`
}

type sagaDetailResponse struct {
	Saga    sagaResponse      `json:"saga"`
	OrderID int64             `json:"orderId,omitempty"`
	History []historyResponse `json:"history"`
}

type sagaActionResponse struct {
	Saga sagaResponse `json:"saga"`
}

// reasonRequest is the body of abort (reason required) and retry (body and
// reason optional).
type reasonRequest struct {
	Reason string `json:"reason"`
}

// compensateRequest is the body of compensate; both fields are required.
type compensateRequest struct {
	Step   string `json:"step"`
	Reason string `json:"reason"`
}

// listParams are the query parameters of GET /admin/sagas.
const listParams = "status, step, older_than, newer_than, customer, order, stuck, limit, after"

func (h handlers) listSagas(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	states, more, err := h.app.ListSagas(r.Context(), f)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	resp := sagaListResponse{Sagas: make([]sagaResponse, 0, len(states))}
	for _, s := range states {
		sr := toSagaResponse(s)
		sr.Payload = maskedPayload(s.Payload)
		resp.Sagas = append(resp.Sagas, sr)
	}
	if more {
		resp.Next = encodeCursor(saga.CursorOf(states[len(states)-1]))
	}
	platform.WriteJSON(w, http.StatusOK, resp)
}

// parseFilter reads the listing's query parameters, reporting every bad one.
func parseFilter(r *http.Request) (saga.Filter, error) {
	q := r.URL.Query()
	var (
		f    saga.Filter
		errs []string
	)
	for key := range q {
		if !slices.Contains(strings.Split(listParams, ", "), key) {
			errs = append(errs, fmt.Sprintf("unknown parameter %q (known: %s)", key, listParams))
		}
	}
	slices.Sort(errs)
	f.Status = saga.Status(strings.ToUpper(q.Get("status")))
	f.Step = q.Get("step")
	for _, d := range []struct {
		key string
		dst *time.Duration
	}{{"older_than", &f.OlderThan}, {"newer_than", &f.NewerThan}} {
		key, dst := d.key, d.dst
		if v := q.Get(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				errs = append(errs, fmt.Sprintf("%s %q: want a duration like 10m", key, v))
			}
			*dst = d
		}
	}
	// The saga payload names the order and the customer (app.RequestPayload).
	match := map[string]int64{}
	for _, m := range [][2]string{{"customer", "customer-id"}, {"order", "order-id"}} {
		key, field := m[0], m[1]
		if v := q.Get(key); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Sprintf("%s %q: want a positive id", key, v))
			}
			match[field] = n
		}
	}
	if len(match) > 0 {
		f.Payload, _ = json.Marshal(match) // cannot fail: a map of numbers
	}
	if v := q.Get("stuck"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("stuck %q: want true or false", v))
		}
		f.Stuck = b
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > saga.MaxPage {
			errs = append(errs, fmt.Sprintf("limit %q: want 1 to %d", v, saga.MaxPage))
		}
		f.Limit = n
	}
	if v := q.Get("after"); v != "" {
		c, err := decodeCursor(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("after %q: not a cursor from a previous page", v))
		}
		f.After = &c
	}
	if len(errs) > 0 {
		return saga.Filter{}, fmt.Errorf("%w: %s", app.ErrBadInput, strings.Join(errs, "; "))
	}
	return f, nil
}

// A cursor is the creation time (Unix microseconds) and id of the last saga
// of a page, base64url-encoded: opaque to clients.
func encodeCursor(c saga.Cursor) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d.%s", c.CreatedAt.UnixMicro(), c.ID))
}

func decodeCursor(s string) (saga.Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return saga.Cursor{}, err
	}
	micros, id, ok := strings.Cut(string(raw), ".")
	if !ok {
		return saga.Cursor{}, errors.New("no separator")
	}
	us, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return saga.Cursor{}, err
	}
	uid, err := uuid.Parse(id)
	if err != nil {
		return saga.Cursor{}, err
	}
	return saga.Cursor{CreatedAt: time.UnixMicro(us), ID: uid}, nil
}

func (h handlers) sagaDetail(w http.ResponseWriter, r *http.Request) {
	id, err := sagaID(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	d, err := h.app.GetSagaDetail(r.Context(), id)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	resp := sagaDetailResponse{Saga: toSagaResponse(d.Saga), OrderID: d.OrderID, History: make([]historyResponse, 0, len(d.History))}
	resp.Saga.Payload = maskedPayload(d.Saga.Payload)
	for _, e := range d.History {
		hr := historyResponse{
			ID: e.ID, Version: e.Version, At: timestamp(e.At), Step: e.Step, From: e.From, To: e.To,
			SagaStatus: e.SagaStatus, Attempt: e.Attempt,
			Cause: causeResponse{
				Kind: e.Cause.Kind, Topic: e.Cause.Topic, EventType: e.Cause.EventType,
				Actor: e.Cause.Actor, Action: e.Cause.Action, Reason: e.Cause.Reason,
			},
		}
		if !e.Deadline.IsZero() {
			hr.Deadline = timestamp(e.Deadline)
		}
		if e.Cause.EventID != uuid.Nil {
			hr.Cause.EventID = e.Cause.EventID.String()
		}
		resp.History = append(resp.History, hr)
	}
	platform.WriteJSON(w, http.StatusOK, resp)
}

func (h handlers) abortSaga(w http.ResponseWriter, r *http.Request) {
	var req reasonRequest
	h.sagaAction(w, r, &req, false, func(id uuid.UUID, actor string) (saga.State, error) {
		return h.app.AbortSaga(r.Context(), id, app.Operator{Name: actor, Reason: req.Reason})
	})
}

func (h handlers) retrySaga(w http.ResponseWriter, r *http.Request) {
	var req reasonRequest
	h.sagaAction(w, r, &req, true, func(id uuid.UUID, actor string) (saga.State, error) {
		return h.app.RetrySaga(r.Context(), id, app.Operator{Name: actor, Reason: req.Reason})
	})
}

func (h handlers) compensateStep(w http.ResponseWriter, r *http.Request) {
	var req compensateRequest
	h.sagaAction(w, r, &req, false, func(id uuid.UUID, actor string) (saga.State, error) {
		return h.app.CompensateStep(r.Context(), id, req.Step, app.Operator{Name: actor, Reason: req.Reason})
	})
}

// sagaAction decodes the saga id and the body into req (an empty body is
// allowed when emptyOK) and runs do as the operator named by the request's
// token.
func (h handlers) sagaAction(w http.ResponseWriter, r *http.Request, req any, emptyOK bool,
	do func(id uuid.UUID, actor string) (saga.State, error)) {
	id, err := sagaID(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := decodeBody(w, r, req, emptyOK); err != nil {
		h.writeError(w, r, err)
		return
	}
	s, err := do(id, platform.AdminName(r.Context()))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	platform.WriteJSON(w, http.StatusOK, sagaActionResponse{Saga: toSagaResponse(s)})
}

var errBadID = errors.New("saga id is not a UUID")

func sagaID(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		return uuid.Nil, fmt.Errorf("%w: %w", app.ErrBadInput, errBadID)
	}
	return id, nil
}

// decodeBody is decodeJSON that accepts an empty body (dst unchanged) when
// emptyOK.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any, emptyOK bool) error {
	if !emptyOK {
		return decodeJSON(w, r, dst)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return tooBig
		}
		return fmt.Errorf("%w: %v", errMalformed, err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return decodeJSON(w, r, dst)
}
