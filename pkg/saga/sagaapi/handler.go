package sagaapi

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/pkg/jsonbody"
	"github.com/sagabox/sagabox/pkg/outbox"
	"github.com/sagabox/sagabox/pkg/saga"
)

// DB is what the API needs of the database: a pool.
type DB interface {
	saga.Querier
	Begin(ctx context.Context) (pgx.Tx, error)
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// API serves the operator's saga API over Orchestrator's sagas. Mount
// Routes at /admin/sagas behind the service's authentication.
type API struct {
	Orchestrator *saga.Orchestrator
	DB           DB
	// Actor names the operator of a request (the service's authentication
	// knows who it is); an action without one is refused.
	Actor func(*http.Request) string
	// StuckAfter is how long a saga may stay ABORTING before it is listed
	// as stuck (it is stuck too when past its deadline).
	StuckAfter time.Duration
	// PayloadFilters are further query parameters of the list, each naming
	// a field of the saga payload that holds a positive id: the order
	// service's customer → customer-id, order → order-id.
	PayloadFilters map[string]string
	// Mask, when set, returns a saga payload as operators may see it (the
	// order service masks the sealed card).
	Mask func(json.RawMessage) json.RawMessage
	// Extra, when set, adds fields to a saga's detail, read in the
	// detail's snapshot (the order service: the saga's order id).
	Extra func(ctx context.Context, q saga.Querier, s saga.State) (map[string]any, error)
	// AuditAggregate is the outbox aggregatetype of the actions' audit
	// events (the topic "<AuditAggregate>.request" with the order
	// service's connector), keyed by the saga id; empty: DefaultAudit.
	AuditAggregate string
	Log            *slog.Logger
}

// DefaultAudit is the audit events' aggregatetype when API.AuditAggregate
// is empty.
const DefaultAudit = "saga-admin"

// MaxBody bounds the body of an action.
const MaxBody = 64 << 10

// MaxReasonLen bounds an operator's reason.
const MaxReasonLen = 1000

// ErrBadInput reports a request that cannot be carried out as given; the
// message says why (400).
var ErrBadInput = errors.New("invalid request")

// Routes returns the API's router, to be mounted at /admin/sagas.
func (a API) Routes() http.Handler {
	r := chi.NewRouter()
	r.Get("/", a.list)
	r.Get("/stats", a.stats)
	r.Get("/types", a.types)
	r.Get("/{id}", a.detail)
	r.Post("/{id}/abort", a.action(ActionAbort, true, func(ctx context.Context, tx pgx.Tx, id uuid.UUID, req ActionRequest, c saga.Cause) (saga.State, error) {
		return a.Orchestrator.Abort(ctx, tx, id, c)
	}))
	r.Post("/{id}/retry", a.action(ActionRetry, false, func(ctx context.Context, tx pgx.Tx, id uuid.UUID, req ActionRequest, c saga.Cause) (saga.State, error) {
		return a.Orchestrator.Retry(ctx, tx, id, req.Step, c)
	}))
	r.Post("/{id}/compensate", a.action(ActionCompensate, true, func(ctx context.Context, tx pgx.Tx, id uuid.UUID, req ActionRequest, c saga.Cause) (saga.State, error) {
		return a.Orchestrator.MarkCompensated(ctx, tx, id, req.Step, c)
	}))
	return r
}

var listParams = []string{"status", "step", "type", "older_than", "newer_than", "stuck", "limit", "after"}

func (a API) list(w http.ResponseWriter, r *http.Request) {
	f, err := a.filter(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	states, more, err := saga.List(r.Context(), a.DB, f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	resp := List{Sagas: make([]Saga, 0, len(states))}
	for _, s := range states {
		resp.Sagas = append(resp.Sagas, a.view(s))
	}
	if more {
		resp.Next = encodeCursor(saga.CursorOf(states[len(states)-1]))
	}
	writeJSON(w, http.StatusOK, resp)
}

func (a API) view(s saga.State) Saga {
	v := SagaOf(s)
	v.UnknownVersion = !a.Orchestrator.Known(s)
	v.Payload = s.Payload
	if a.Mask != nil {
		v.Payload = a.Mask(s.Payload)
	}
	return v
}

// filter reads the listing's query parameters, reporting every bad one.
func (a API) filter(r *http.Request) (saga.Filter, error) {
	q := r.URL.Query()
	f := saga.Filter{StuckAfter: a.StuckAfter}
	var errs []string
	for key := range q {
		if _, ok := a.PayloadFilters[key]; !ok && !slices.Contains(listParams, key) {
			errs = append(errs, fmt.Sprintf("unknown parameter %q", key))
		}
	}
	slices.Sort(errs)
	f.Status = saga.Status(strings.ToUpper(q.Get("status")))
	if f.Status != "" && !f.Status.Valid() {
		errs = append(errs, fmt.Sprintf("unknown saga status %q", q.Get("status")))
	}
	f.Type, f.Step = q.Get("type"), q.Get("step")
	if f.Type != "" {
		if _, ok := a.Orchestrator.Definition(f.Type); !ok {
			errs = append(errs, fmt.Sprintf("unknown saga type %q", f.Type))
		}
	}
	if f.Step != "" && !a.knownStep(f.Type, f.Step) {
		errs = append(errs, fmt.Sprintf("unknown step %q", f.Step))
	}
	for key, dst := range map[string]*time.Duration{"older_than": &f.OlderThan, "newer_than": &f.NewerThan} {
		if v := q.Get(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				errs = append(errs, fmt.Sprintf("%s %q: want a duration like 10m", key, v))
			}
			*dst = d
		}
	}
	match := map[string]int64{}
	for key, field := range a.PayloadFilters {
		if v := q.Get(key); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Sprintf("%s %q: want a positive id", key, v))
			}
			match[field] = n
		}
	}
	if len(match) > 0 {
		f.PayloadIDs = match
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
		return saga.Filter{}, fmt.Errorf("%w: %s", ErrBadInput, strings.Join(errs, "; "))
	}
	return f, nil
}

// knownStep reports whether a saga type (any, when sagaType is "") has a
// step called step.
func (a API) knownStep(sagaType, step string) bool {
	for _, t := range a.Orchestrator.Types() {
		for _, v := range a.Orchestrator.Versions(t) {
			d, _ := a.Orchestrator.DefinitionVersion(t, v)
			if (sagaType == "" || t == sagaType) && d.HasStep(step) {
				return true
			}
		}
	}
	return false
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

func (a API) types(w http.ResponseWriter, _ *http.Request) {
	out := []Type{}
	for _, t := range a.Orchestrator.Types() {
		latest, _ := a.Orchestrator.Definition(t)
		for _, version := range a.Orchestrator.Versions(t) {
			d, _ := a.Orchestrator.DefinitionVersion(t, version)
			v := Type{Type: t, Version: version, Latest: version == latest.V(), ForwardOnly: d.ForwardOnly, Steps: []Step{}}
			for i, s := range d.Steps {
				st := Step{Name: s.Name, After: append([]string{}, d.Deps(i)...), Compensable: s.Compensate != nil,
					Retries: s.Deadline.Retries}
				if s.Deadline.Timeout > 0 {
					st.Timeout = s.Deadline.Timeout.String()
				}
				v.Steps = append(v.Steps, st)
			}
			out = append(out, v)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// detail reads a saga, its history and the service's extra fields from one
// snapshot.
func (a API) detail(w http.ResponseWriter, r *http.Request) {
	id, err := sagaID(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var d Detail
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	err = pgx.BeginTxFunc(r.Context(), a.DB, opts, func(tx pgx.Tx) error {
		s, err := saga.Load(r.Context(), tx, id)
		if err != nil {
			return err
		}
		d.Saga = a.view(s)
		h, err := saga.History(r.Context(), tx, id)
		if err != nil {
			return err
		}
		d.History = make([]History, 0, len(h))
		for _, e := range h {
			v := History{ID: e.ID, Version: e.Version, At: ms(e.At), Step: e.Step, From: e.From, To: e.To,
				SagaStatus: e.SagaStatus, Attempt: e.Attempt, Cause: e.Cause}
			if !e.Deadline.IsZero() {
				dl := ms(e.Deadline)
				v.Deadline = &dl
			}
			d.History = append(d.History, v)
		}
		if a.Extra == nil {
			return nil
		}
		extra, err := a.Extra(r.Context(), tx, s)
		if err != nil {
			return err
		}
		d.Extra = map[string]json.RawMessage{}
		for k, v := range extra {
			if d.Extra[k], err = json.Marshal(v); err != nil {
				return fmt.Errorf("encode %s: %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// stats serves GET /admin/sagas/stats?window=15m&bucket=1m (the defaults).
func (a API) stats(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	window, bucket := 15*time.Minute, time.Minute
	var errs []string
	for key := range q {
		if key != "window" && key != "bucket" && key != "type" {
			errs = append(errs, fmt.Sprintf("unknown parameter %q (known: window, bucket, type)", key))
		}
	}
	for key, dst := range map[string]*time.Duration{"window": &window, "bucket": &bucket} {
		if v := q.Get(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second {
				errs = append(errs, fmt.Sprintf("%s %q: want a duration of at least 1s, like 15m", key, v))
			}
			*dst = d
		}
	}
	if t := q.Get("type"); t != "" {
		if _, ok := a.Orchestrator.Definition(t); !ok {
			errs = append(errs, fmt.Sprintf("unknown saga type %q", t))
		}
	}
	if len(errs) == 0 && (window < bucket || window/bucket > saga.MaxBuckets) {
		errs = append(errs, fmt.Sprintf("window/bucket must make 1 to %d buckets", saga.MaxBuckets))
	}
	if len(errs) > 0 {
		slices.Sort(errs)
		a.fail(w, r, fmt.Errorf("%w: %s", ErrBadInput, strings.Join(errs, "; ")))
		return
	}
	var (
		st      saga.Stats
		unknown int64
	)
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	err := pgx.BeginTxFunc(r.Context(), a.DB, opts, func(tx pgx.Tx) error {
		var err error
		st, err = saga.ReadStats(r.Context(), tx, saga.StatsQuery{Type: q.Get("type"), Window: window, Bucket: bucket, StuckAfter: a.StuckAfter})
		if err != nil {
			return err
		}
		unknown, err = a.Orchestrator.CountUnknown(r.Context(), tx)
		return err
	})
	if err != nil {
		a.fail(w, r, fmt.Errorf("saga stats: %w", err))
		return
	}
	resp := Stats{At: ms(st.At), Window: window.String(), Bucket: bucket.String(), Now: st.ByState, Stuck: st.Stuck,
		Buckets: make([]Bucket, len(st.Buckets)), Ended: st.Ended,
		P50Ms: float64(st.P50.Microseconds()) / 1000, P99Ms: float64(st.P99.Microseconds()) / 1000, UnknownVersion: unknown}
	for i, b := range st.Buckets {
		resp.Buckets[i] = Bucket{Start: ms(b.Start), Started: b.Started, Succeeded: b.Succeeded, Aborted: b.Aborted}
	}
	writeJSON(w, http.StatusOK, resp)
}

type actionFunc func(ctx context.Context, tx pgx.Tx, id uuid.UUID, req ActionRequest, c saga.Cause) (saga.State, error)

// action serves an operator action: the body (a reason required when
// needReason; for retry the body may be empty), then the transition, the
// orchestrator's OnTransition and the audit event in one transaction.
func (a API) action(name string, needReason bool, do actionFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := sagaID(r)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		var req ActionRequest
		if err := decodeBody(w, r, &req, !needReason); err != nil {
			a.fail(w, r, err)
			return
		}
		actor := ""
		if a.Actor != nil {
			actor = a.Actor(r)
		}
		if err := validate(name, actor, req, needReason); err != nil {
			a.fail(w, r, err)
			return
		}
		if req.Step != "" && !a.knownStep("", req.Step) {
			a.fail(w, r, fmt.Errorf("%w: unknown step %q", ErrBadInput, req.Step))
			return
		}
		cause := saga.Cause{Actor: actor, Action: name, Reason: strings.TrimSpace(req.Reason)}
		var s saga.State
		err = pgx.BeginFunc(r.Context(), a.DB, func(tx pgx.Tx) error {
			var err error
			if s, err = do(r.Context(), tx, id, req, cause); err != nil {
				return err
			}
			payload, err := json.Marshal(AuditEvent{SagaID: id, Action: name, Step: req.Step, Actor: actor,
				Reason: cause.Reason, SagaStatus: s.Status, Version: s.Version})
			if err != nil {
				return fmt.Errorf("encode audit event: %w", err)
			}
			aggregate := cmp.Or(a.AuditAggregate, DefaultAudit)
			return outbox.Write(r.Context(), tx, outbox.Event{
				AggregateType: aggregate, AggregateID: id.String(), Type: AuditEventType, Payload: payload,
			})
		})
		if err != nil {
			a.fail(w, r, fmt.Errorf("%s saga %s: %w", name, id, err))
			return
		}
		a.Log.InfoContext(r.Context(), "operator action", "saga_id", id, "action", name, "saga_step", req.Step,
			"actor", actor, "reason", cause.Reason, "saga_status", s.Status, "version", s.Version)
		writeJSON(w, http.StatusOK, Action{Saga: a.view(s)})
	}
}

// validate checks an action's request: an operator, the reason (required
// or not; text of at most MaxReasonLen bytes, no control characters but
// line breaks and tabs), a step for compensate, optional for retry (the
// one step to send again; none: every waiting step) and none for abort.
func validate(action, actor string, req ActionRequest, needReason bool) error {
	var errs []string
	if actor == "" {
		errs = append(errs, "no operator name")
	}
	if needReason && strings.TrimSpace(req.Reason) == "" {
		errs = append(errs, "reason is required")
	}
	if len(req.Reason) > MaxReasonLen {
		errs = append(errs, fmt.Sprintf("reason longer than %d bytes", MaxReasonLen))
	}
	if !utf8.ValidString(req.Reason) || strings.ContainsFunc(req.Reason, func(r rune) bool {
		return unicode.IsControl(r) && r != '\n' && r != '\t'
	}) {
		errs = append(errs, "reason must be text: valid UTF-8, no control characters but line breaks and tabs")
	}
	switch {
	case action == ActionCompensate && req.Step == "":
		errs = append(errs, "step is required")
	case action == ActionAbort && req.Step != "":
		errs = append(errs, "step is for compensate and retry only")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrBadInput, strings.Join(errs, "; "))
	}
	return nil
}

// Validate is the check of an action's request (exported for fuzzing):
// what validate does.
func Validate(action, actor string, req ActionRequest, needReason bool) error {
	return validate(action, actor, req, needReason)
}

func sagaID(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		return uuid.Nil, fmt.Errorf("%w: saga id is not a UUID", ErrBadInput)
	}
	return id, nil
}

// decodeBody reads the body of r into dst (jsonbody.Read, at most
// MaxBody); an empty body leaves dst as it is when emptyOK.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any, emptyOK bool) error {
	return jsonbody.Read(w, r, MaxBody, dst, emptyOK)
}

// fail is the one place errors become statuses: {"error": …}.
func (a API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", tooBig.Limit))
	case errors.Is(err, jsonbody.ErrMalformed), errors.Is(err, ErrBadInput):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, saga.ErrNotFound):
		writeError(w, http.StatusNotFound, "not found")
	case errors.Is(err, saga.ErrWrongState):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, saga.ErrStale):
		writeError(w, http.StatusConflict, "the saga changed at the same time; look again and retry")
	default:
		a.Log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
