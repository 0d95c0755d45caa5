package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/sagabox/sagabox/internal/tracecli"
	"github.com/sagabox/sagabox/pkg/participant"
)

// serviceView is one service on the overview: its instances' health and
// its database's messaging (outbox, parked messages, replication slots).
type serviceView struct {
	Name      string
	Health    []instanceHealth
	Messaging *messagingJSON
	Err       string
}

type overviewData struct {
	Stats      *statsJSON
	StatsErr   string
	Chart      chartView
	Throughput float64 // sagas ended per minute over the window
	Services   []serviceView
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	d := overviewData{}
	var wg sync.WaitGroup
	wg.Go(func() {
		var st statsJSON
		if err := s.order.call(ctx, http.MethodGet, "/admin/sagas/stats?window=15m&bucket=1m", s.cfg.Token, nil, &st); err != nil {
			d.StatsErr = s.failed(ctx, "order", err)
			return
		}
		d.Stats, d.Chart = &st, newChart(&st)
		if win, err := time.ParseDuration(st.Window); err == nil && win > 0 {
			d.Throughput = float64(st.Ended) / win.Minutes()
		}
	})
	ups := []upstream{s.order, s.customer, s.payment}
	d.Services = make([]serviceView, len(ups))
	for i, u := range ups {
		wg.Go(func() {
			v := serviceView{Name: u.name, Health: u.health(ctx)}
			var m messagingJSON
			if err := u.call(ctx, http.MethodGet, "/admin/messaging", s.cfg.Token, nil, &m); err != nil {
				v.Err = s.failed(ctx, u.name, err)
			} else {
				v.Messaging = &m
			}
			d.Services[i] = v
		})
	}
	wg.Wait()
	s.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", Data: d})
}

// sagaRow is one saga of the list.
type sagaRow struct {
	sagaJSON
	OrderID, CustomerID int64
	Steps               []stepBadge
	Stuck               bool
}

type stepBadge struct{ Name, Status string }

func newSagaRow(sg sagaJSON) sagaRow {
	row := sagaRow{sagaJSON: sg, OrderID: payloadInt(sg.Payload, "order-id"), CustomerID: payloadInt(sg.Payload, "customer-id")}
	row.Steps = stepBadges(sg)
	row.Stuck = sg.Deadline != nil && sg.Deadline.Before(time.Now())
	return row
}

// stepBadges lists a saga's steps in the saga's order: the definition's
// order is not in the API, so by the order they start, which for
// order-placement is credit-approval, payment.
func stepBadges(sg sagaJSON) []stepBadge {
	var out []stepBadge
	for name, st := range sg.StepStatus {
		out = append(out, stepBadge{Name: name, Status: st})
	}
	order := []string{"credit-approval", "payment"}
	slices.SortFunc(out, func(a, b stepBadge) int {
		ia, ib := slices.Index(order, a.Name), slices.Index(order, b.Name)
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

type listData struct {
	Filter   url.Values
	Query    string // the filter as a query string, for the live refresh
	Sagas    []sagaRow
	Next     string
	Statuses []string
	Steps    []string
	Ages     []string
}

var listFilters = []string{"status", "step", "older_than", "newer_than", "customer", "order", "stuck", "after"}

func (s *Server) sagaList(w http.ResponseWriter, r *http.Request) {
	in := r.URL.Query()
	f := url.Values{}
	for _, k := range listFilters {
		if v := strings.TrimSpace(in.Get(k)); v != "" {
			f.Set(k, v)
		}
	}
	d := listData{Filter: f, Query: f.Encode(), Statuses: []string{"STARTED", "SUCCEEDED", "ABORTING", "ABORTED"},
		Steps: []string{"credit-approval", "payment"}, Ages: []string{"1m", "5m", "15m", "1h", "24h"}}
	q := url.Values{"limit": {"100"}}
	for k, v := range f {
		q[k] = v
	}
	var list sagaListJSON
	p := page{Title: "Sagas", Nav: "sagas", Data: &d}
	if err := s.order.call(r.Context(), http.MethodGet, "/admin/sagas?"+q.Encode(), s.cfg.Token, nil, &list); err != nil {
		p.Error = s.failed(r.Context(), "order", err)
	}
	for _, sg := range list.Sagas {
		d.Sagas = append(d.Sagas, newSagaRow(sg))
	}
	d.Next = list.Next
	s.render(w, r, http.StatusOK, "sagas", p)
}

// historyRow is one transition of the saga's timeline.
type historyRow struct {
	historyJSON
	OffsetMs  float64 // since the saga started
	CauseText string
}

type sagaData struct {
	Saga        sagaRow
	OrderID     int64
	History     []historyRow
	Done        bool
	Order       *orderJSON
	OrderErr    string
	Customer    *customerJSON
	Allocation  *allocationJSON
	AllocErr    string
	Payments    []paymentJSON
	PaymentsErr string
	Payload     string
	// Compensating is the step an operator may mark compensated by hand.
	Compensating string
}

func (s *Server) sagaPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := chi.URLParam(r, "id")
	if _, err := uuid.Parse(id); err != nil {
		s.render(w, r, http.StatusBadRequest, "overview", page{Title: "Bad saga id", Error: "Not a saga id: " + id})
		return
	}
	var detail sagaDetailJSON
	if err := s.order.call(ctx, http.MethodGet, "/admin/sagas/"+id, s.cfg.Token, nil, &detail); err != nil {
		code := statusOf(err)
		if code == 0 || code >= 500 {
			code = http.StatusBadGateway
		}
		s.render(w, r, code, "overview", page{Title: "Saga " + id, Error: s.failed(ctx, "order", err)})
		return
	}
	d := sagaData{Saga: newSagaRow(detail.Saga), OrderID: detail.OrderID, Payload: pretty(detail.Saga.Payload)}
	d.Done = detail.Saga.Status == "SUCCEEDED" || detail.Saga.Status == "ABORTED"
	for _, st := range d.Saga.Steps {
		if st.Status == "COMPENSATING" {
			d.Compensating = st.Name
		}
	}
	for _, h := range detail.History {
		d.History = append(d.History, historyRow{historyJSON: h, CauseText: causeText(h),
			OffsetMs: float64(h.At.Sub(detail.Saga.CreatedAt).Microseconds()) / 1000})
	}
	s.participants(ctx, id, &d)
	s.render(w, r, http.StatusOK, "saga", page{Title: "Saga " + id[:8], Nav: "sagas", Data: d})
}

// participants reads the saga's three sides at once: the order, the credit
// allocation and the payments.
func (s *Server) participants(ctx context.Context, id string, d *sagaData) {
	if d.OrderID == 0 {
		d.OrderErr = "no order for this saga"
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		var o orderJSON
		if err := s.order.call(ctx, http.MethodGet, fmt.Sprintf("/orders/%d", d.OrderID), "", nil, &o); err != nil {
			d.OrderErr = s.failed(ctx, "order", err)
			return
		}
		d.Order = &o
		var c customerJSON
		if err := s.customer.call(ctx, http.MethodGet, fmt.Sprintf("/customers/%d", o.CustomerID), "", nil, &c); err == nil {
			d.Customer = &c
		}
	})
	wg.Go(func() {
		var rec participant.Record
		switch err := s.customer.call(ctx, http.MethodGet, "/steps/credit-approval/"+id, "", nil, &rec); {
		case statusOf(err) == http.StatusNotFound:
			d.AllocErr = "nothing asked of the customer service yet"
		case err != nil:
			d.AllocErr = s.failed(ctx, "customer", err)
		default:
			a := allocationJSON{Status: rec.Status, CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt}
			_ = json.Unmarshal(rec.Record, &a) // a CANCELLED marker has no record
			d.Allocation = &a
		}
	})
	wg.Go(func() {
		if err := s.payment.call(ctx, http.MethodGet, fmt.Sprintf("/payments?orderId=%d", d.OrderID), "", nil, &d.Payments); err != nil {
			d.PaymentsErr = s.failed(ctx, "payment", err)
		}
	})
	wg.Wait()
}

// causeText says in words what made a transition.
func causeText(h historyJSON) string {
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
	return c.Kind
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
	id, action := chi.URLParam(r, "id"), chi.URLParam(r, "action")
	back := "/sagas/" + url.PathEscape(id)
	if _, err := uuid.Parse(id); err != nil {
		redirect(w, r, "/sagas", "error", "not a saga id")
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		redirect(w, r, back, "error", action+": the admin token is required")
		return
	}
	body := map[string]string{"reason": trimReason(r.PostFormValue("reason"))}
	if action == "compensate" {
		body["step"] = r.PostFormValue("step")
	}
	var out struct{ Saga sagaJSON }
	if err := s.order.call(r.Context(), http.MethodPost, "/admin/sagas/"+id+"/"+action, token, body, &out); err != nil {
		redirect(w, r, back, "error", action+" refused: "+s.failed(r.Context(), "order", err))
		return
	}
	redirect(w, r, back, "done", fmt.Sprintf("%s done: saga %s, version %d", action, out.Saga.Status, out.Saga.Version))
}

type parkedService struct {
	Name   string
	Parked []parkedJSON
	Err    string
}

func (s *Server) parkedPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ups := []upstream{s.order, s.customer, s.payment}
	out := make([]parkedService, len(ups))
	var wg sync.WaitGroup
	for i, u := range ups {
		wg.Go(func() {
			var l parkedListJSON
			ps := parkedService{Name: u.name}
			if err := u.call(ctx, http.MethodGet, "/admin/parked?status=all&limit=200", s.cfg.Token, nil, &l); err != nil {
				ps.Err = s.failed(ctx, u.name, err)
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
	var u upstream
	switch chi.URLParam(r, "service") {
	case "order":
		u = s.order
	case "customer":
		u = s.customer
	case "payment":
		u = s.payment
	default:
		redirect(w, r, "/parked", "error", "no such service")
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		redirect(w, r, "/parked", "error", "replay: the admin token is required")
		return
	}
	path := "/admin/parked/replay"
	if pid := chi.URLParam(r, "pid"); pid != "" {
		path = "/admin/parked/" + url.PathEscape(pid) + "/replay"
	}
	body := map[string]string{"reason": trimReason(r.PostFormValue("reason"))}
	if err := u.call(r.Context(), http.MethodPost, path, token, body, nil); err != nil {
		redirect(w, r, "/parked", "error", "replay refused: "+s.failed(r.Context(), u.name, err))
		return
	}
	redirect(w, r, "/parked", "done", "replayed on the "+u.name+" service")
}
