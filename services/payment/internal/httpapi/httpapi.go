// Package httpapi is the payment service's HTTP interface.
package httpapi

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/services/payment/internal/store"
)

type paymentResponse struct {
	ID         int64     `json:"id"`
	SagaID     uuid.UUID `json:"sagaId"`
	OrderID    int64     `json:"orderId"`
	CustomerID int64     `json:"customerId"`
	Amount     int64     `json:"amount"` // cents
	CardLast4  string    `json:"creditCardLast4"`
	Status     string    `json:"status"`
	CreatedAt  time.Time `json:"createdAt"`
}

// Routes returns the payment service's router. health serves /healthz.
func Routes(pool *pgxpool.Pool, health http.Handler, log *slog.Logger) chi.Router {
	r := chi.NewRouter()
	r.Use(platform.NameSpanByRoute)
	r.Method(http.MethodGet, "/healthz", health)
	r.Get("/payments", func(w http.ResponseWriter, r *http.Request) {
		raw := r.URL.Query().Get("orderId")
		orderID, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || orderID <= 0 {
			platform.WriteError(w, http.StatusBadRequest, "query parameter orderId must be a positive integer")
			return
		}
		ps, err := store.ByOrder(r.Context(), pool, orderID)
		if err != nil {
			log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
			platform.WriteError(w, http.StatusInternalServerError, "internal error")
			return
		}
		out := make([]paymentResponse, 0, len(ps))
		for _, p := range ps {
			out = append(out, paymentResponse{
				ID: p.ID, SagaID: p.SagaID, OrderID: p.OrderID, CustomerID: p.CustomerID,
				Amount: p.Amount, CardLast4: p.CardLast4, Status: p.Status, CreatedAt: p.CreatedAt,
			})
		}
		platform.WriteJSON(w, http.StatusOK, out)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		platform.WriteError(w, http.StatusNotFound, "no such route")
	})
	return r
}
