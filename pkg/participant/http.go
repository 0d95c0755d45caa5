package participant

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
)

// Routes serves the participant's steps and what they did, for operators
// and the console, to be mounted at /steps (no token needed, like the rest
// of a participant's read API):
//
//	GET /steps                   the contracts of the steps served
//	GET /steps/{step}/{sagaId}   what step did for the saga (Record); 404 if nothing
func (p *Participant) Routes(db Querier, log *slog.Logger) http.Handler {
	r := chi.NewRouter()
	r.Get("/", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, p.infos) })
	r.Get("/{step}/{sagaId}", func(w http.ResponseWriter, r *http.Request) {
		step := chi.URLParam(r, "step")
		known := false
		for _, s := range p.infos {
			known = known || s.Name == step
		}
		if !known {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such step here: " + step})
			return
		}
		id, err := uuid.Parse(chi.URLParam(r, "sagaId"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "sagaId: want a saga id (UUID)"})
			return
		}
		rec, err := Lookup(r.Context(), db, step, id)
		switch {
		case errors.Is(err, ErrNoRecord):
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
		case err != nil:
			log.ErrorContext(r.Context(), "look up step record", "saga_step", step, "saga_id", id, "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
		default:
			writeJSON(w, http.StatusOK, rec)
		}
	})
	return r
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
