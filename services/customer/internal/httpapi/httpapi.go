// Package httpapi is the customer service's HTTP interface.
package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/services/customer/internal/store"
)

type customerResponse struct {
	ID        int64 `json:"id"`
	OpenLimit int64 `json:"openLimit"` // cents
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
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		platform.WriteError(w, http.StatusNotFound, "no such route")
	})
	return r
}
