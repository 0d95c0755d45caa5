package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/sagabox/sagabox/api"
	"github.com/sagabox/sagabox/internal/tracecli"
	"github.com/sagabox/sagabox/pkg/saga/sagaapi"
)

// serviceView is one service on the overview: its instances' health and
// its database's messaging (outbox, parked messages, replication slots).
type serviceView struct {
	Name      string
	Health    []instanceHealth
	Messaging *api.Messaging
	Err       string
}

// typeStats is one saga type's sagas on the overview.
type typeStats struct {
	Type  string
	Now   map[string]int64
	Ended int64
	Err   string
}

// statsView is the saga statistics as the overview shows them.
type statsView struct {
	sagaapi.Stats
	Now map[string]int64 // per status
}

type overviewData struct {
	Stats      *statsView
	StatsErr   string
	Types      []typeStats // per saga type
	Chart      chartView
	Throughput float64 // sagas ended per minute over the window
	Services   []serviceView
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	d := overviewData{}
	var wg sync.WaitGroup
	wg.Go(func() {
		st, err := s.order.SagaStats(ctx, url.Values{"window": {"15m"}, "bucket": {"1m"}})
		if err != nil {
			d.StatsErr = s.failed(ctx, "order", err)
			return
		}
		v := statsView{Stats: st, Now: map[string]int64{}}
		for k, n := range st.Now {
			v.Now[string(k)] = n
		}
		d.Stats, d.Chart = &v, newChart(st)
		if win, err := time.ParseDuration(st.Window); err == nil && win > 0 {
			d.Throughput = float64(st.Ended) / win.Minutes()
		}
	})
	for key := range s.sagaSteps(ctx) {
		if !strings.Contains(key, "/") {
			d.Types = append(d.Types, typeStats{Type: key})
		}
	}
	slices.SortFunc(d.Types, func(a, b typeStats) int { return strings.Compare(a.Type, b.Type) })
	for i := range d.Types {
		wg.Go(func() {
			t := &d.Types[i]
			st, err := s.order.SagaStats(ctx, url.Values{"window": {"15m"}, "bucket": {"15m"}, "type": {t.Type}})
			if err != nil {
				t.Err = s.failed(ctx, "order", err)
				return
			}
			t.Now, t.Ended = map[string]int64{}, st.Ended
			for k, n := range st.Now {
				t.Now[string(k)] = n
			}
		})
	}
	svcs := s.services()
	d.Services = make([]serviceView, len(svcs))
	for i, c := range svcs {
		wg.Go(func() {
			v := serviceView{Name: c.Name, Health: health(ctx, c)}
			if m, err := c.Messaging(ctx); err != nil {
				v.Err = s.failed(ctx, c.Name, err)
			} else {
				v.Messaging = &m
			}
			d.Services[i] = v
		})
	}
	wg.Wait()
	s.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", Data: d})
}

// sagaRow is one saga as the pages show it.
type sagaRow struct {
	ID, Type, Status, CurrentStep   string
	Attempt, Version                int
	DefinitionVersion               int
	UnknownVersion, ForwardOnly     bool
	Deadline                        *time.Time
	StatusSince, CreatedAt, Updated time.Time
	UpdatedAt                       time.Time
	Payload                         json.RawMessage
	OrderID, CustomerID             int64
	Steps                           []stepBadge
	// Stages are the steps as they run: each stage's steps side by side
	// (branches), after the stage before.
	Stages [][]stepBadge
	Stuck  bool
}

type stepBadge struct {
	Name, Status string
	Lane         int // its place among the steps of its stage (branches)
}

// stepGraph is a saga type's steps, in one version, as its definition
// orders them: each step's stage is one more than the latest stage of the
// steps it waits for, so steps of one stage run in parallel.
type stepGraph struct {
	Order       []string
	Stage       map[string]int
	ForwardOnly bool // it cannot be aborted
}

// graphs holds the step graph of every type and version the order service
// runs ("order-placement/1").
type graphs map[string]stepGraph

func graphKey(sagaType string, version int) string { return sagaType + "/" + strconv.Itoa(version) }

// of returns the graph of saga type t in version v, or its latest when the
// service does not hold v.
func (g graphs) of(t string, v int) stepGraph {
	if sg, ok := g[graphKey(t, v)]; ok {
		return sg
	}
	return g[t]
}

// newSagaRow shows sg, its steps in the order of its type's definition
// and grouped into the stages they run in (g: the saga types' steps, from
// the order service).
func newSagaRow(sg sagaapi.Saga, g graphs) sagaRow {
	row := sagaRow{ID: sg.ID.String(), Type: sg.Type, Status: string(sg.Status), CurrentStep: sg.CurrentStep,
		Attempt: sg.Attempt, Version: sg.Version, DefinitionVersion: sg.DefinitionVersion, UnknownVersion: sg.UnknownVersion,
		Deadline: sg.Deadline, StatusSince: sg.StatusSince,
		CreatedAt: sg.CreatedAt, UpdatedAt: sg.UpdatedAt, Payload: sg.Payload,
		OrderID: payloadInt(sg.Payload, "order-id"), CustomerID: payloadInt(sg.Payload, "customer-id")}
	for name, st := range sg.StepStatus {
		row.Steps = append(row.Steps, stepBadge{Name: name, Status: string(st)})
	}
	graph := g.of(sg.Type, sg.DefinitionVersion)
	row.ForwardOnly = graph.ForwardOnly
	slices.SortFunc(row.Steps, func(a, b stepBadge) int {
		ia, ib := slices.Index(graph.Order, a.Name), slices.Index(graph.Order, b.Name)
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a.Name, b.Name)
	})
	for _, st := range row.Steps {
		stage := graph.Stage[st.Name]
		for len(row.Stages) <= stage {
			row.Stages = append(row.Stages, nil)
		}
		st.Lane = len(row.Stages[stage])
		row.Stages[stage] = append(row.Stages[stage], st)
	}
	row.Stages = slices.DeleteFunc(row.Stages, func(s []stepBadge) bool { return len(s) == 0 })
	row.Stuck = sg.Deadline != nil && sg.Deadline.Before(time.Now())
	return row
}

// sagaSteps returns the step graph of each saga type and version the order
// service runs, and under the bare type its latest version's; empty when
// it cannot say (the pages then sort steps by name).
func (s *Server) sagaSteps(ctx context.Context) graphs {
	out := graphs{}
	types, err := s.order.SagaTypes(ctx)
	if err != nil {
		s.failed(ctx, "order", err)
		return out
	}
	for _, t := range types {
		g := stepGraph{Stage: map[string]int{}, ForwardOnly: t.ForwardOnly}
		for _, st := range t.Steps {
			g.Order = append(g.Order, st.Name)
			stage := 0
			for _, dep := range st.After {
				stage = max(stage, g.Stage[dep]+1)
			}
			g.Stage[st.Name] = stage
		}
		out[graphKey(t.Type, t.Version)] = g
		if t.Latest {
			out[t.Type] = g
		}
	}
	return out
}

type listData struct {
	Filter   url.Values
	Query    string // the filter as a query string, for the live refresh
	Sagas    []sagaRow
	Next     string
	Statuses []string
	Types    []string
	Steps    []string
	Ages     []string
}

var listFilters = []string{"status", "type", "step", "older_than", "newer_than", "customer", "order", "stuck", "after"}

func (s *Server) sagaList(w http.ResponseWriter, r *http.Request) {
	in := r.URL.Query()
	f := url.Values{}
	for _, k := range listFilters {
		if v := strings.TrimSpace(in.Get(k)); v != "" {
			f.Set(k, v)
		}
	}
	steps := s.sagaSteps(r.Context())
	d := listData{Filter: f, Query: f.Encode(), Statuses: []string{"STARTED", "SUCCEEDED", "ABORTING", "ABORTED"},
		Ages: []string{"1m", "5m", "15m", "1h", "24h"}}
	for key, g := range steps {
		if strings.Contains(key, "/") {
			continue // a version: its type is listed under the bare name
		}
		d.Types = append(d.Types, key)
		for _, st := range g.Order {
			if !slices.Contains(d.Steps, st) {
				d.Steps = append(d.Steps, st)
			}
		}
	}
	slices.Sort(d.Types)
	q := url.Values{"limit": {"100"}}
	for k, v := range f {
		q[k] = v
	}
	p := page{Title: "Sagas", Nav: "sagas", Data: &d}
	list, err := s.order.Sagas(r.Context(), q)
	if err != nil {
		p.Error = s.failed(r.Context(), "order", err)
	}
	for _, sg := range list.Sagas {
		d.Sagas = append(d.Sagas, newSagaRow(sg, steps))
	}
	d.Next = list.Next
	s.render(w, r, http.StatusOK, "sagas", p)
}

// historyRow is one transition of the saga's timeline.
type historyRow struct {
	Version                    int
	At                         time.Time
	Step, From, To, SagaStatus string
	Cause                      struct{ Kind string }
	OffsetMs                   float64 // since the saga started
	CauseText                  string
	// Lane is the step's branch among the steps of its stage: the
	// timeline indents parallel branches.
	Lane int
}

// stepSide is what the participant serving a step did for the saga.
type stepSide struct {
	Step, Service string
	Status        string
	Fields        []field // its record
	UpdatedAt     time.Time
	Err           string
}

type field struct{ Name, Value string }

type sagaData struct {
	Saga     sagaRow
	OrderID  int64
	History  []historyRow
	Done     bool
	Order    *api.Order
	OrderErr string
	Sides    []stepSide
	Payload  string
	// Compensating is the step an operator may mark compensated by hand.
	Compensating string
}

func (s *Server) sagaPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		s.render(w, r, http.StatusBadRequest, "overview", page{Title: "Bad saga id", Error: "Not a saga id: " + chi.URLParam(r, "id")})
		return
	}
	detail, err := s.order.Saga(ctx, id)
	if err != nil {
		code := api.StatusOf(err)
		if code == 0 || code >= 500 {
			code = http.StatusBadGateway
		}
		s.render(w, r, code, "overview", page{Title: "Saga " + id.String(), Error: s.failed(ctx, "order", err)})
		return
	}
	steps := s.sagaSteps(ctx)
	d := sagaData{Saga: newSagaRow(detail.Saga, steps), Payload: pretty(detail.Saga.Payload)}
	_ = json.Unmarshal(detail.Extra["orderId"], &d.OrderID)
	d.Done = d.Saga.Status == "SUCCEEDED" || d.Saga.Status == "ABORTED"
	for _, st := range d.Saga.Steps {
		if st.Status == "COMPENSATING" {
			d.Compensating = st.Name
		}
	}
	lanes := map[string]int{}
	for _, stage := range d.Saga.Stages {
		for _, st := range stage {
			lanes[st.Name] = st.Lane
		}
	}
	for _, h := range detail.History {
		row := historyRow{Version: h.Version, At: h.At, Step: h.Step, From: string(h.From), To: string(h.To),
			SagaStatus: string(h.SagaStatus), CauseText: causeText(h), Lane: lanes[h.Step],
			OffsetMs: float64(h.At.Sub(detail.Saga.CreatedAt).Microseconds()) / 1000}
		row.Cause.Kind = string(h.Cause.Kind)
		d.History = append(d.History, row)
	}
	s.sides(ctx, id, &d)
	s.render(w, r, http.StatusOK, "saga", page{Title: "Saga " + id.String()[:8], Nav: "sagas", Data: d})
}

// sides reads the saga's sides at once: its order, and what the
// participant of each of its steps did for it.
func (s *Server) sides(ctx context.Context, id uuid.UUID, d *sagaData) {
	var wg sync.WaitGroup
	if d.OrderID == 0 {
		d.OrderErr = "no order for this saga"
	} else {
		wg.Go(func() {
			o, err := s.order.Order(ctx, d.OrderID)
			if err != nil {
				d.OrderErr = s.failed(ctx, "order", err)
				return
			}
			d.Order = &o
		})
	}
	d.Sides = make([]stepSide, len(d.Saga.Steps))
	for i, st := range d.Saga.Steps {
		wg.Go(func() {
			side := stepSide{Step: st.Name}
			defer func() { d.Sides[i] = side }()
			c, ok := s.owner(ctx, st.Name)
			if !ok {
				side.Err = "no participant serving this step answers"
				return
			}
			side.Service = c.Name
			rec, err := c.StepRecord(ctx, st.Name, id)
			switch {
			case api.StatusOf(err) == http.StatusNotFound:
				side.Err = "nothing asked of the " + c.Name + " service yet"
			case err != nil:
				side.Err = s.failed(ctx, c.Name, err)
			default:
				side.Status, side.UpdatedAt, side.Fields = rec.Status, rec.UpdatedAt, recordFields(rec.Record)
			}
		})
	}
	wg.Wait()
}

// recordFields shows a step's record: amounts (fields named so) as money,
// card fields masked, in the record's field order.
func recordFields(raw json.RawMessage) []field {
	var out []field
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return out
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return out
		}
		name := fmt.Sprint(k)
		value := fmt.Sprint(v)
		switch n := strings.ToLower(name); {
		case strings.Contains(n, "card"):
			value = "•••• " + value[max(0, len(value)-4):]
		case strings.Contains(n, "amount"):
			if f, ok := v.(float64); ok {
				value = cents(int64(f))
			}
		default:
			if f, ok := v.(float64); ok {
				value = fmt.Sprint(int64(f))
			}
		}
		out = append(out, field{Name: name, Value: value})
	}
	return out
}

// causeText says in words what made a transition.
func causeText(h sagaapi.History) string {
	c := h.Cause
	switch c.Kind {
	case "start":
		return "saga started: request sent"
	case "reply":
		return fmt.Sprintf("%s %s (event %s)", c.Topic, c.EventType, c.EventID)
	case "retry":
		return fmt.Sprintf("deadline passed: message sent again (attempt %d)", h.Attempt)
	case "timeout":
		return "deadline passed, no retry left: step abandoned"
	case "operator":
		text := fmt.Sprintf("operator %s by %s", c.Action, c.Actor)
		if c.Reason != "" {
			text += fmt.Sprintf(": %q", c.Reason)
		}
		return text
	}
	return string(c.Kind)
}

// sagaTrace serves the trace panel of a saga page: the trace of the order's
// POST /orders (its span carries saga.id), as a waterfall.
func (s *Server) sagaTrace(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := chi.URLParam(r, "id")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	data := struct {
		Trace   *traceView
		Pending bool
		Err     string
		NoQuery bool
	}{NoQuery: s.cfg.JaegerQueryURL == ""}
	if _, err := uuid.Parse(id); err != nil {
		data.Err = "not a saga id"
	} else if !data.NoQuery {
		t, err := s.findTrace(ctx, id)
		switch {
		case errors.Is(err, tracecli.ErrNotFound):
			data.Pending = true
		case err != nil:
			data.Err = s.failed(ctx, "jaeger", err)
		default:
			v := newTraceView(t, s.cfg.JaegerUIURL)
			data.Trace = &v
		}
	}
	if err := s.pages["saga"].ExecuteTemplate(w, "trace", data); err != nil {
		s.log.ErrorContext(ctx, "render trace", "err", err)
	}
}

func (s *Server) findTrace(ctx context.Context, sagaID string) (tracecli.Trace, error) {
	ids, err := tracecli.FindByTag(ctx, s.jaeger, s.cfg.JaegerQueryURL, "order-service", "saga.id", sagaID, 7*24*time.Hour)
	if err != nil {
		return tracecli.Trace{}, err
	}
	if len(ids) == 0 {
		return tracecli.Trace{}, fmt.Errorf("no trace of saga %s yet: %w", sagaID, tracecli.ErrNotFound)
	}
	return tracecli.Fetch(ctx, s.jaeger, s.cfg.JaegerQueryURL, ids[0])
}

// sagaAction carries out an operator action with the operator's own token,
// typed into the confirmation dialog, and comes back to the saga page.
func (s *Server) sagaAction(w http.ResponseWriter, r *http.Request) {
	action := chi.URLParam(r, "action")
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		redirect(w, r, "/sagas", "error", "not a saga id")
		return
	}
	back := "/sagas/" + id.String()
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		redirect(w, r, back, "error", action+": the admin token is required")
		return
	}
	req := sagaapi.ActionRequest{Reason: trimReason(r.PostFormValue("reason"))}
	if action == sagaapi.ActionCompensate {
		req.Step = r.PostFormValue("step")
	}
	out, err := as(s.order, token).SagaAction(r.Context(), id, action, req)
	if err != nil {
		redirect(w, r, back, "error", action+" refused: "+s.failed(r.Context(), "order", err))
		return
	}
	redirect(w, r, back, "done", fmt.Sprintf("%s done: saga %s, version %d", action, out.Saga.Status, out.Saga.Version))
}

type parkedService struct {
	Name   string
	Parked []api.ParkedMessage
	Err    string
}

func (s *Server) parkedPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	svcs := s.services()
	out := make([]parkedService, len(svcs))
	var wg sync.WaitGroup
	for i, c := range svcs {
		wg.Go(func() {
			ps := parkedService{Name: c.Name}
			l, err := c.Parked(ctx, url.Values{"status": {"all"}, "limit": {"200"}})
			if err != nil {
				ps.Err = s.failed(ctx, c.Name, err)
			}
			for _, p := range l.Parked {
				p.Value = pretty([]byte(p.Value))
				ps.Parked = append(ps.Parked, p)
			}
			out[i] = ps
		})
	}
	wg.Wait()
	s.render(w, r, http.StatusOK, "parked", page{Title: "Parked messages", Nav: "parked", Data: out})
}

// replayParked replays one parked message, or all of a service's, with the
// operator's token.
func (s *Server) replayParked(w http.ResponseWriter, r *http.Request) {
	c, ok := s.service(chi.URLParam(r, "service"))
	if !ok {
		redirect(w, r, "/parked", "error", "no such service")
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		redirect(w, r, "/parked", "error", "replay: the admin token is required")
		return
	}
	reason := trimReason(r.PostFormValue("reason"))
	var err error
	if pid := chi.URLParam(r, "pid"); pid != "" {
		var id int64
		if _, err = fmt.Sscan(pid, &id); err == nil {
			_, err = as(c, token).ReplayParked(r.Context(), id, reason)
		}
	} else {
		_, err = as(c, token).ReplayAllParked(r.Context(), reason)
	}
	if err != nil {
		redirect(w, r, "/parked", "error", "replay refused: "+s.failed(r.Context(), c.Name, err))
		return
	}
	redirect(w, r, "/parked", "done", "replayed on the "+c.Name+" service")
}
