// Package httpapi is the order service's HTTP interface: request decoding and
// validation, response shapes, and the one mapping from errors to statuses.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/sagabox/sagabox/api"
	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/pkg/card"
	"github.com/sagabox/sagabox/pkg/jsonbody"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/pkg/saga/sagaapi"
	"github.com/sagabox/sagabox/services/order/internal/app"
	"github.com/sagabox/sagabox/services/order/internal/store"
)

// MaxBodyBytes bounds a request body; larger ones get 413.
const MaxBodyBytes = 64 << 10

// Routes returns the order service's router. health serves /healthz; the
// operator's saga API (pkg/saga/sagaapi) under /admin/sagas opens only to a
// bearer token of tokens.
func Routes(a *app.App, health http.Handler, log *slog.Logger, tokens platform.AdminTokens) chi.Router {
	h := handlers{app: a, log: log}
	r := platform.Router(health)
	r.Post("/orders", h.placeOrder)
	r.Get("/orders/{id}", h.getOrder)
	r.Post("/orders/{id}/cancel", h.cancelOrder)
	r.Get("/sagas/{id}", h.getSaga)
	r.Route("/admin", func(r chi.Router) {
		r.Use(platform.RequireAdmin(tokens, log))
		r.Mount("/sagas", sagaapi.API{
			Orchestrator: a.Sagas(), DB: a.Pool(), Actor: func(r *http.Request) string { return platform.AdminName(r.Context()) },
			StuckAfter: a.Settings().StuckAfter, PayloadFilters: map[string]string{"customer": "customer-id", "order": "order-id"},
			Mask: maskedPayload, Extra: orderOf, AuditAggregate: app.AdminAggregate, Log: log,
		}.Routes())
	})
	return r
}

type handlers struct {
	app *app.App
	log *slog.Logger
}

// placeOrder places an order. With an Idempotency-Key header (the IETF
// httpapi draft), a request that comes again with the key — a client
// retrying after a timeout — gets the first order's response, marked
// Idempotent-Replayed, instead of placing a second order; the key with
// another body is 422.
func (h handlers) placeOrder(w http.ResponseWriter, r *http.Request) {
	key, err := idempotencyKey(r.Header)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	in, err := readPlaceOrder(w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	o, replayed, err := h.app.PlaceOrderOnce(r.Context(), key, in)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	// `sagabox trace ORDER_ID` finds the order's trace by this attribute.
	trace.SpanFromContext(r.Context()).SetAttributes(
		attribute.Int64("order.id", o.ID), attribute.String("saga.id", o.SagaID.String()))
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", fmt.Sprintf("/orders/%d", o.ID))
	// A replay answers as the first request was answered: the order as
	// created, whatever became of it since (GET /orders/{id} tells).
	platform.WriteJSON(w, http.StatusAccepted, api.Placed{OrderID: o.ID, SagaID: o.SagaID, Status: store.StatusCreated})
}

// idempotencyKey reads the Idempotency-Key header: a structured-field
// string as the draft has it ("…"), or the bare token most clients send;
// 1 to 255 printable ASCII characters. "" when there is none.
func idempotencyKey(h http.Header) (string, error) {
	vs := h.Values("Idempotency-Key")
	if len(vs) == 0 {
		return "", nil
	}
	bad := func(why string) error { return fmt.Errorf("%w: Idempotency-Key %s", errBadHeader, why) }
	if len(vs) > 1 {
		return "", bad("given more than once")
	}
	v := strings.TrimSpace(vs[0])
	quoted := len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"'
	if quoted {
		var b strings.Builder
		for i := 1; i < len(v)-1; i++ {
			c := v[i]
			if c == '"' {
				return "", bad("has an unescaped quote")
			}
			if c == '\\' {
				if i++; i == len(v)-1 || (v[i] != '"' && v[i] != '\\') {
					return "", bad("has a bad escape")
				}
				c = v[i]
			}
			b.WriteByte(c)
		}
		v = b.String()
	}
	switch {
	case v == "":
		return "", bad("is empty")
	case len(v) > app.MaxIdempotencyKeyLen:
		return "", bad(fmt.Sprintf("is longer than %d characters", app.MaxIdempotencyKeyLen))
	case strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r > '~' || (!quoted && r == ' ') }):
		return "", bad("must be printable ASCII")
	}
	return v, nil
}

// readPlaceOrder decodes and validates the body of POST /orders. Its
// errors never quote the card number.
func readPlaceOrder(w http.ResponseWriter, r *http.Request) (app.PlaceOrder, error) {
	var req api.PlaceOrder
	if err := decodeJSON(w, r, &req); err != nil {
		return app.PlaceOrder{}, err
	}
	in, err := toCommand(req)
	if err != nil {
		return app.PlaceOrder{}, err
	}
	return in, in.Validate()
}

func toCommand(req api.PlaceOrder) (app.PlaceOrder, error) {
	var missing []string
	for name, v := range map[string]bool{
		"itemId": req.ItemID == nil, "quantity": req.Quantity == nil, "customerId": req.CustomerID == nil,
		"paymentDue": req.PaymentDue == nil, "creditCardNo": req.CreditCardNo == nil,
	} {
		if v {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return app.PlaceOrder{}, fmt.Errorf("%w: missing fields: %s", app.ErrInvalid, strings.Join(missing, ", "))
	}
	return app.PlaceOrder{
		CustomerID: *req.CustomerID, ItemID: *req.ItemID, Quantity: int(*req.Quantity),
		PaymentDue: *req.PaymentDue, CreditCardNo: *req.CreditCardNo,
	}, nil
}

// orderOf adds a saga's order id to its detail in the operator's API.
func orderOf(ctx context.Context, q saga.Querier, s saga.State) (map[string]any, error) {
	o, err := store.OrderOfSaga(ctx, q, s.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"orderId": o.ID}, nil
}

func (h handlers) getOrder(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		h.writeError(w, r, errNotFound)
		return
	}
	v, err := h.app.GetOrder(r.Context(), id)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	o := api.Order{
		OrderID: v.Order.ID, CustomerID: v.Order.CustomerID, ItemID: v.Order.ItemID, Quantity: v.Order.Quantity,
		PaymentDue: v.Order.PaymentDue, CardLast4: v.Order.CardLast4, Status: v.Order.Status,
		Saga: sagaapi.SagaOf(v.Saga),
	}
	if v.Cancellation != nil {
		c := sagaapi.SagaOf(*v.Cancellation)
		o.Cancellation = &c
	}
	platform.WriteJSON(w, http.StatusOK, o)
}

// cancelOrder starts the cancellation of an ACCEPTED order: 202 with the
// order CANCELLING and its order-cancellation saga; 404 for an unknown
// order; 409 for one being placed, rejected, or cancelled (or being
// cancelled) already.
func (h handlers) cancelOrder(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		h.writeError(w, r, errNotFound)
		return
	}
	o, err := h.app.CancelOrder(r.Context(), id)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/orders/%d", o.ID))
	platform.WriteJSON(w, http.StatusAccepted, api.Cancelling{OrderID: o.ID, SagaID: o.CancelSagaID, Status: o.Status})
}

func (h handlers) getSaga(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		h.writeError(w, r, errNotFound)
		return
	}
	s, err := h.app.GetSaga(r.Context(), id)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	resp := sagaapi.SagaOf(s)
	resp.Payload = maskedPayload(s.Payload)
	platform.WriteJSON(w, http.StatusOK, resp)
}

// maskedPayload returns the saga payload as the API shows it: the sealed
// card as its format and key id only ("v1.k2.…", which tells an operator
// the key a saga in flight needs), a number in clear (from before they were
// sealed) as its last four characters.
func maskedPayload(raw json.RawMessage) json.RawMessage {
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil
	}
	if c, ok := p["credit-card-sealed"].(string); ok {
		id, _ := card.KeyID(c)
		p["credit-card-sealed"] = card.Version + "." + id + ".…"
	}
	if c, ok := p["credit-card-no"].(string); ok {
		p["credit-card-no"] = "****" + card.Last4(c)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil
	}
	return b
}

var (
	errNotFound  = errors.New("not found")
	errBadHeader = errors.New("bad request header")
)

// decodeJSON reads the body of r into dst (jsonbody.Read, at most
// MaxBodyBytes).
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	return jsonbody.Read(w, r, MaxBodyBytes, dst, false)
}

// writeError is the one place errors become HTTP statuses.
func (h handlers) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		platform.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", tooBig.Limit))
	case errors.Is(err, jsonbody.ErrMalformed), errors.Is(err, errBadHeader), errors.Is(err, app.ErrInvalid):
		platform.WriteError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, app.ErrKeyReused):
		platform.WriteError(w, http.StatusUnprocessableEntity, "Idempotency-Key was used for a different order: use a new key for a new order")
	case errors.Is(err, errNotFound), errors.Is(err, store.ErrNotFound), errors.Is(err, saga.ErrNotFound):
		platform.WriteError(w, http.StatusNotFound, "not found")
	case errors.Is(err, saga.ErrWrongState), errors.Is(err, app.ErrCannotCancel):
		platform.WriteError(w, http.StatusConflict, err.Error())
	case errors.Is(err, saga.ErrStale):
		platform.WriteError(w, http.StatusConflict, "the saga changed at the same time; look again and retry")
	default:
		h.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		platform.WriteError(w, http.StatusInternalServerError, "internal error")
	}
}
