package platform

import (
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/api"
	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/outbox"
)

// MessagingAPI serves GET /admin/messaging behind RequireAdmin: the state
// of the service database's messaging, as the console shows it:
//
//	{"outbox": {"rows": N, "oldest": "…"}, "parked": N,
//	 "slots": [{"name", "active", "lagBytes", "retainedBytes"}]}
//
// slots are the logical replication slots on the database — the relay's
// or Debezium's, whichever reads the outbox — with how far each is behind
// the WAL.
type MessagingAPI struct {
	Pool   *pgxpool.Pool
	Tokens AdminTokens
	Log    *slog.Logger
}

// Routes returns the router of the API, to be mounted at /admin/messaging.
func (a MessagingAPI) Routes() http.Handler {
	r := adminRouter(a.Tokens, a.Log)
	r.Get("/", a.status)
	return r
}

func (a MessagingAPI) status(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.Query()) > 0 {
		WriteError(w, http.StatusBadRequest, "no query parameters expected")
		return
	}
	var (
		resp api.Messaging
		err  error
	)
	if resp.Outbox, err = outbox.ReadBacklog(r.Context(), a.Pool); err == nil {
		if resp.Parked, err = consumer.CountParked(r.Context(), a.Pool); err == nil {
			resp.Slots, err = outbox.Slots(r.Context(), a.Pool)
		}
	}
	if err != nil {
		a.Log.ErrorContext(r.Context(), "read messaging status", "err", err)
		WriteError(w, http.StatusInternalServerError, "internal error")
		return
	}
	if resp.Slots == nil {
		resp.Slots = []outbox.Slot{}
	}
	WriteJSON(w, http.StatusOK, resp)
}
