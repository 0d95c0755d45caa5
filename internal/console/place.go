package console

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/sagabox/sagabox/api"
	"github.com/sagabox/sagabox/requests"
)

// example is one of the reference orders of requests/, as the place-order
// form offers it.
type example struct {
	File, Title, Outcome string
	ItemID, CustomerID   int64
	Quantity             int
	PaymentDue           int64
	CreditCardNo         string
	// Key is the form's idempotency key, new with every page: a form sent
	// twice (a double click, a reload) places one order.
	Key string
}

// scenarios say what each reference order shows (README, "Placing
// orders").
var scenarios = map[string][2]string{
	"place-order.json":          {"An order that succeeds", "ACCEPTED: credit approved, payment taken"},
	"place-invalid-order1.json": {"The payment fails", "REJECTED: card …9999 refused, the credit released (compensation)"},
	"place-invalid-order2.json": {"The credit is refused", "REJECTED: 599.99 is over the customer's limit, no payment asked"},
}

func loadExamples() ([]example, error) {
	var out []example
	for _, file := range []string{"place-order.json", "place-invalid-order1.json", "place-invalid-order2.json"} {
		raw, err := fs.ReadFile(requests.Files(), file)
		if err != nil {
			return nil, fmt.Errorf("example %s: %w", file, err)
		}
		e := example{File: file, Title: scenarios[file][0], Outcome: scenarios[file][1], Key: uuid.NewString()}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("example %s: %w", file, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func (s *Server) placePage(w http.ResponseWriter, r *http.Request) {
	ex, err := loadExamples()
	p := page{Title: "Place an order", Nav: "place", Data: ex}
	if err != nil {
		p.Error = err.Error()
	}
	s.render(w, r, http.StatusOK, "place", p)
}

// placeOrder sends the form to the order service's POST /orders, with the
// form's idempotency key, and goes to the new saga's page.
func (s *Server) placeOrder(w http.ResponseWriter, r *http.Request) {
	var errs []string
	key, err := uuid.Parse(r.PostFormValue("idempotencyKey"))
	if err != nil {
		errs = append(errs, "the form has no idempotency key: reload the page")
	}
	num := func(f string) *int64 {
		n, err := strconv.ParseInt(strings.TrimSpace(r.PostFormValue(f)), 10, 64)
		if err != nil {
			errs = append(errs, f+" must be a whole number")
		}
		return &n
	}
	card := strings.TrimSpace(r.PostFormValue("creditCardNo"))
	body := api.PlaceOrder{ItemID: num("itemId"), Quantity: num("quantity"), CustomerID: num("customerId"),
		PaymentDue: num("paymentDue"), CreditCardNo: &card}
	if len(errs) > 0 {
		redirect(w, r, "/place", "error", strings.Join(errs, "; "))
		return
	}
	placed, _, err := s.order.PlaceOrder(r.Context(), body, key.String())
	if err != nil {
		redirect(w, r, "/place", "error", "order refused: "+s.failed(r.Context(), "order", err))
		return
	}
	redirect(w, r, "/sagas/"+placed.SagaID.String(), "done", fmt.Sprintf("order %d placed", placed.OrderID))
}

// cancelOrder sends an order's cancellation to the order service's POST
// /orders/{id}/cancel, as the place-order form sends an order (no token:
// the order API has none), and goes to the cancellation saga's page.
func (s *Server) cancelOrder(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		redirect(w, r, "/sagas", "error", "not an order id")
		return
	}
	c, err := s.order.CancelOrder(r.Context(), id)
	if err != nil {
		back := "/sagas?order=" + strconv.FormatInt(id, 10)
		redirect(w, r, back, "error", "cancellation refused: "+s.failed(r.Context(), "order", err))
		return
	}
	redirect(w, r, "/sagas/"+c.SagaID.String(), "done", fmt.Sprintf("order %d: cancellation started", id))
}
