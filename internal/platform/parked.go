package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/api"
	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/outbox"
)

// ParkedAPI serves a service's parked messages under /admin/parked, behind
// RequireAdmin:
//
//	GET  /admin/parked?status=PARKED|REPLAYED|all&after=ID&limit=N  oldest first
//	POST /admin/parked/{id}/replay   {"reason": "…"}   one message
//	POST /admin/parked/replay        {"reason": "…"}   every PARKED message, in order
//
// A replay goes through the consumer's journal and handler (see
// consumer.Replay), so it applies a message at most once however often it
// is asked for. Every replay is recorded on the row and leaves through the
// outbox as an "OperatorAction" event of aggregate "<service>-admin".
type ParkedAPI struct {
	Service  string // "customer" for aggregate customer-admin
	Pool     *pgxpool.Pool
	Consumer *consumer.Consumer
	Tokens   AdminTokens
	Log      *slog.Logger
}

// MaxAdminBody bounds the body of an admin request.
const MaxAdminBody = 16 << 10

// Routes returns the router of the API, to be mounted at /admin/parked.
func (a ParkedAPI) Routes() http.Handler {
	r := adminRouter(a.Tokens, a.Log)
	r.Get("/", a.list)
	r.Post("/replay", a.replayAll)
	r.Post("/{id}/replay", a.replayOne)
	return r
}

// adminRouter is a router for an API mounted under /admin: spans named by
// route, every request behind RequireAdmin, JSON errors for unknown routes
// and methods.
func adminRouter(tokens AdminTokens, log *slog.Logger) chi.Router {
	r := chi.NewRouter()
	r.Use(NameSpanByRoute, RequireAdmin(tokens, log))
	jsonErrors(r)
	return r
}

func (a ParkedAPI) list(w http.ResponseWriter, r *http.Request) {
	f := consumer.ParkedFilter{Status: consumer.ParkedWaiting, Limit: 50}
	q := r.URL.Query()
	for k := range q {
		if k != "status" && k != "after" && k != "limit" {
			WriteError(w, http.StatusBadRequest, fmt.Sprintf("unknown parameter %q (want status, after, limit)", k))
			return
		}
	}
	switch s := q.Get("status"); s {
	case "", consumer.ParkedWaiting:
	case consumer.ParkedReplayed:
		f.Status = s
	case "all":
		f.Status = ""
	default:
		WriteError(w, http.StatusBadRequest, "status: want PARKED, REPLAYED or all")
		return
	}
	var err error
	if v := q.Get("after"); v != "" {
		if f.After, err = strconv.ParseInt(v, 10, 64); err != nil || f.After < 0 {
			WriteError(w, http.StatusBadRequest, "after: want a message id")
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > consumer.MaxParkedPage {
			WriteError(w, http.StatusBadRequest, fmt.Sprintf("limit: want 1 to %d", consumer.MaxParkedPage))
			return
		}
	}
	ps, err := consumer.ListParked(r.Context(), a.Pool, f)
	if err != nil {
		a.Log.ErrorContext(r.Context(), "list parked messages", "err", err)
		WriteError(w, http.StatusInternalServerError, "internal error")
		return
	}
	out := api.ParkedList{Parked: make([]api.ParkedMessage, len(ps))}
	for i, p := range ps {
		out.Parked[i] = viewParked(p)
	}
	if len(ps) == f.Limit {
		out.Next = strconv.FormatInt(ps[len(ps)-1].ID, 10)
	}
	WriteJSON(w, http.StatusOK, out)
}

// viewParked is a parked message as the API shows it: the value as text
// (JSON, for this system's messages; bytes that are not UTF-8 show as
// U+FFFD).
func viewParked(p consumer.Parked) api.ParkedMessage {
	return api.ParkedMessage{Parked: p, Value: string(p.Value)}
}

func decodeReplay(w http.ResponseWriter, r *http.Request) (api.Reason, bool) {
	var req api.Reason
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxAdminBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", MaxAdminBody))
		return req, false
	case err != nil:
		WriteError(w, http.StatusBadRequest, "body: want {\"reason\": \"…\"}: "+err.Error())
		return req, false
	case dec.Decode(&struct{}{}) != io.EOF:
		WriteError(w, http.StatusBadRequest, "body: one JSON object only")
		return req, false
	case strings.TrimSpace(req.Reason) == "":
		WriteError(w, http.StatusBadRequest, "reason is required")
		return req, false
	case strings.ContainsFunc(req.Reason, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) ||
		strings.ContainsRune(req.Reason, utf8.RuneError):
		// The decoder turned bytes that are not UTF-8 into U+FFFD.
		WriteError(w, http.StatusBadRequest, "reason must be text: valid UTF-8, no control characters but line breaks and tabs")
		return req, false
	}
	return req, true
}

func (a ParkedAPI) replayOne(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		WriteError(w, http.StatusBadRequest, "id: want a parked message id")
		return
	}
	req, ok := decodeReplay(w, r)
	if !ok {
		return
	}
	p, err := a.Consumer.Replay(r.Context(), id, AdminName(r.Context()), req.Reason, a.audit)
	switch {
	case errors.Is(err, consumer.ErrParkedNotFound):
		WriteError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, consumer.ErrReplayed):
		WriteError(w, http.StatusConflict, err.Error())
	case err != nil && p.ID != 0:
		// The handler failed again: the message stays parked.
		WriteError(w, http.StatusUnprocessableEntity, err.Error())
	case err != nil:
		a.Log.ErrorContext(r.Context(), "replay parked message", "parked_id", id, "err", err)
		WriteError(w, http.StatusInternalServerError, "internal error")
	default:
		WriteJSON(w, http.StatusOK, viewParked(p))
	}
}

func (a ParkedAPI) replayAll(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeReplay(w, r)
	if !ok {
		return
	}
	out := api.ReplayAll{Replayed: []api.ReplayResult{}, Failed: []api.ReplayResult{}}
	var after int64
	for {
		ps, err := consumer.ListParked(r.Context(), a.Pool, consumer.ParkedFilter{Status: consumer.ParkedWaiting, After: after, Limit: consumer.MaxParkedPage})
		if err != nil {
			a.Log.ErrorContext(r.Context(), "list parked messages", "err", err)
			WriteError(w, http.StatusInternalServerError, "internal error")
			return
		}
		for _, p := range ps {
			after = p.ID
			done, err := a.Consumer.Replay(r.Context(), p.ID, AdminName(r.Context()), req.Reason, a.audit)
			switch {
			case errors.Is(err, consumer.ErrReplayed): // replayed meanwhile by someone else
			case err != nil:
				out.Failed = append(out.Failed, api.ReplayResult{ID: p.ID, Error: err.Error()})
			default:
				out.Replayed = append(out.Replayed, api.ReplayResult{ID: p.ID, Outcome: done.ReplayOutcome})
			}
		}
		if len(ps) < consumer.MaxParkedPage {
			break
		}
	}
	WriteJSON(w, http.StatusOK, out)
}

// audit writes the replay's OperatorAction event to the outbox, within the
// replay's transaction.
func (a ParkedAPI) audit(ctx context.Context, tx pgx.Tx, p consumer.Parked) error {
	payload, err := json.Marshal(map[string]any{
		"action": "replay-parked", "parkedId": p.ID, "consumer": p.Consumer, "topic": p.Topic,
		"partition": p.Partition, "offset": p.Offset, "eventId": p.EventID,
		"actor": p.ReplayedBy, "reason": p.ReplayReason, "outcome": p.ReplayOutcome,
	})
	if err != nil {
		return fmt.Errorf("encode replay audit: %w", err)
	}
	// Keyed by the saga, as the message was; a key that is not text (a
	// record parked for that) by the parked row.
	key := p.Key
	if key == "" || !utf8.ValidString(key) || strings.ContainsRune(key, 0) {
		key = "parked-" + strconv.FormatInt(p.ID, 10)
	}
	return outbox.Write(ctx, tx, outbox.Event{
		AggregateType: a.Service + "-admin", AggregateID: key, Type: "OperatorAction", Payload: payload,
	})
}
