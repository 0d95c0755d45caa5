// Package httpapi is the customer service's HTTP interface.
package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/services/customer/internal/store"
)

type customerResponse struct {
	ID        int64 `json:"id"`
	OpenLimit int64 `json:"openLimit"` // cents
}

// allocationResponse is GET /allocations/{sagaId}: what the customer
// service holds for one saga (status ALLOCATED, RELEASED, REJECTED or
// CANCELLED; amount in cents, 0 unless credit was taken).
type allocationResponse struct {
	SagaID     uuid.UUID `json:"sagaId"`
	CustomerID int64     `json:"customerId"`
	OrderID    int64     `json:"orderId"`
	Amount     int64     `json:"amount"`
	Status     string    `json:"status"`
	CreatedAt  time.Time `json:"createdAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

// Routes returns the customer service's router. health serves /healthz.
func Routes(pool *pgxpool.Pool, health http.Handler, log *slog.Logger) chi.Router {
	r := chi.NewRouter()
	r.Use(platform.NameSpanByRoute)
	r.Method(http.MethodGet, "/healthz", health)
	r.Get("/customers/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
		if err != nil {
			platform.WriteError(w, http.StatusNotFound, "not found")
			return
		}
		c, err := store.GetCustomer(r.Context(), pool, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			platform.WriteError(w, http.StatusNotFound, "not found")
		case err != nil:
			log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
			platform.WriteError(w, http.StatusInternalServerError, "internal error")
		default:
			platform.WriteJSON(w, http.StatusOK, customerResponse{ID: c.ID, OpenLimit: c.OpenLimit})
		}
	})
	r.Get("/allocations/{sagaId}", func(w http.ResponseWriter, r *http.Request) {
		id, err := uuid.Parse(chi.URLParam(r, "sagaId"))
		if err != nil {
			platform.WriteError(w, http.StatusBadRequest, "sagaId: want a saga id (UUID)")
			return
		}
		a, err := store.GetAllocation(r.Context(), pool, id)
		switch {
		case errors.Is(err, store.ErrNoAllocation):
			platform.WriteError(w, http.StatusNotFound, "not found")
		case err != nil:
			log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
			platform.WriteError(w, http.StatusInternalServerError, "internal error")
		default:
			platform.WriteJSON(w, http.StatusOK, allocationResponse{
				SagaID: a.SagaID, CustomerID: a.CustomerID, OrderID: a.OrderID, Amount: a.Amount,
				Status: a.Status, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt,
			})
		}
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		platform.WriteError(w, http.StatusNotFound, "no such route")
	})
	return r
}
