package sagatest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sagabox/sagabox/pkg/saga"
)

// Result is what Walk explored.
type Result struct {
	// Paths counts the paths that ended, by the saga's final status
	// (SUCCEEDED or ABORTED).
	Paths map[saga.Status]int
	// Longest is the events of the longest path in order, each an event
	// and the step it concerns: "reply SUCCEEDED@payment", "timeout@payment",
	// "retry@payment", "abort@payment", "mark@credit-approval".
	Longest []string
	// Cut counts the paths MaxDepth cut before they ended.
	Cut int
}

// Option changes what Walk explores or requires.
type Option func(*walker)

// MaxDepth cuts every path after n events: the walk of a definition with
// many steps or retries grows exponentially with their number. A cut path
// is counted in Result.Cut, not failed. Without MaxDepth every path is
// walked to its end.
func MaxDepth(n int) Option { return func(w *walker) { w.maxDepth = n } }

// Reachable sets the final statuses that at least one path must end in;
// by default both SUCCEEDED and ABORTED. Reachable() requires none, for a
// walk that MaxDepth cuts short.
func Reachable(statuses ...saga.Status) Option {
	return func(w *walker) { w.reachable = statuses }
}

// Payload starts the walked saga with payload, encoded as JSON, and builds
// every message the saga sends with its step's Request or Compensate
// builder: a builder's error fails the walk. Without Payload the saga has
// no payload and no message is built.
func Payload(payload any) Option {
	return func(w *walker) { w.payload = payload; w.build = true }
}

// Walk explores every path of a saga of d from saga.Begin, and fails t on
// the first invariant a path breaks (see Path). At each state of a running
// saga it tries, each on its own branch: the reply to every message the
// saga waits for (SUCCEEDED or FAILED to a request, COMPENSATED to a
// compensation) — steps running in parallel answer in every order — its
// earliest deadline passing (saga.Timeout, at the deadline), and the
// operator's Abort, Retry of each waiting step and MarkCompensated
// (refused ones dropped). Events happen one second apart, a timeout at its
// deadline.
//
// So that every path ends, a message is sent again (Retry, or the timeout
// of a compensation, which is re-sent forever) only once per path; a
// request still times out until its retries are spent. A state reached
// again by events in another order (parallel steps answering) is walked
// on only once: Result counts the paths walked. A path longer than
// that bound allows fails t: the engine did not end the saga. Walk also
// fails t when a status of Reachable (both, by default) ends no path.
//
// Walk runs on the calling goroutine and calls t.Fatalf on a failure; its
// cost is exponential in the number of steps and retries (see MaxDepth).
func Walk(t testing.TB, d saga.Definition, opts ...Option) Result {
	t.Helper()
	w := &walker{t: t, d: d, reachable: []saga.Status{saga.StatusSucceeded, saga.StatusAborted},
		res: Result{Paths: map[saga.Status]int{}}, explored: map[string]bool{}}
	for _, o := range opts {
		o(w)
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("sagatest: walk: %v", err)
	}
	w.limit = bound(d)
	var body json.RawMessage
	if w.build {
		b, err := json.Marshal(w.payload)
		if err != nil {
			t.Fatalf("sagatest: walk saga %s: encode the payload: %v", d.Type, err)
		}
		body = b
	}
	s, acts := saga.Begin(d, sagaID, body, epoch)
	w.send(nil, s, acts, epoch)
	p, err := NewPath(d, s, acts, epoch)
	if err != nil {
		t.Fatalf("sagatest: walk saga %s: start: %v", d.Type, err)
	}
	w.walk(p, nil)
	for _, st := range w.reachable {
		if w.res.Paths[st] == 0 {
			t.Errorf("sagatest: walk saga %s: no path ends %s (ended: %v, cut: %d)", d.Type, st, w.res.Paths, w.res.Cut)
		}
	}
	return w.res
}

type walker struct {
	t         testing.TB
	d         saga.Definition
	maxDepth  int
	reachable []saga.Status
	payload   any
	build     bool
	limit     int
	res       Result
	// explored holds the states whose paths on were walked already (see
	// key): a state reached again, by events in another order, is not
	// walked twice.
	explored map[string]bool
}

// bound is longer than any path of d can be when the engine ends its sagas
// as it should: per step, its request sent once more by Retry and on each
// timeout until its retries are spent, its compensation sent once more,
// and the replies — doubled, for slack.
func bound(d saga.Definition) int {
	n := 0
	for _, st := range d.Steps {
		n += st.Deadline.Retries + 4
	}
	return 2 * n
}

// event is one thing that can happen to a running saga at a time.
type event struct {
	name string
	at   time.Time
	f    func(saga.State, time.Time) (saga.State, []saga.Action, error)
}

// events lists what can happen to running saga s at clock: a reply to
// each message it waits for, its earliest deadline passing, the operator's
// actions. A message is re-sent (retry, a compensation's timeout, any
// timeout of a ForwardOnly saga) only once per path, or the walk would
// never end.
func (w *walker) events(s saga.State, clock time.Time) []event {
	d := w.d
	tick := clock.Add(time.Second)
	var evs []event
	add := func(name string, at time.Time, f func(saga.State, time.Time) (saga.State, []saga.Action, error)) {
		evs = append(evs, event{name, at, f})
	}
	if !s.Deadline.IsZero() {
		once := true
		for name, wt := range s.Waits {
			resent := s.StepStatus[name] == saga.StepCompensating || d.ForwardOnly
			if wt.Deadline.Equal(s.Deadline) && resent && wt.Attempt > 0 {
				once = false
			}
		}
		if once {
			add("timeout@"+s.CurrentStep, later(s.Deadline, tick), func(s saga.State, at time.Time) (saga.State, []saga.Action, error) {
				return saga.Timeout(d, s, at)
			})
		}
	}
	add("abort", tick, func(s saga.State, at time.Time) (saga.State, []saga.Action, error) {
		return saga.Abort(d, s, at)
	})
	for _, st := range d.Steps {
		step := st.Name
		wt, waits := s.Waits[step]
		if !waits {
			continue
		}
		if wt.Attempt == 0 {
			add("retry@"+step, tick, func(s saga.State, at time.Time) (saga.State, []saga.Action, error) {
				return saga.Retry(d, s, step, at)
			})
		}
		outcomes := []saga.StepStatus{saga.StepSucceeded, saga.StepFailed}
		if s.StepStatus[step] == saga.StepCompensating {
			outcomes = []saga.StepStatus{saga.StepCompensated}
			add("mark@"+step, tick, func(s saga.State, at time.Time) (saga.State, []saga.Action, error) {
				return saga.MarkCompensated(d, s, step, at)
			})
		}
		for _, o := range outcomes {
			add("reply "+string(o)+"@"+step, tick, func(s saga.State, at time.Time) (saga.State, []saga.Action, error) {
				return saga.Transition(d, s, step, o, at)
			})
		}
	}
	return evs
}

// walk explores every path on from p, whose events so far are path.
func (w *walker) walk(p Path, path []string) {
	w.t.Helper()
	s := p.s
	if s.Status.Done() || w.maxDepth > 0 && len(path) >= w.maxDepth {
		if s.Status.Done() {
			w.res.Paths[s.Status]++
		} else {
			w.res.Cut++
		}
		if len(path) > len(w.res.Longest) {
			w.res.Longest = path
		}
		return
	}
	if len(path) >= w.limit {
		w.t.Fatalf("sagatest: walk saga %s: not ended after %d events %v: %s", w.d.Type, len(path), path, describe(w.d, s, p.at))
	}
	for _, ev := range w.events(s, p.at) {
		n, na, err := ev.f(s, ev.at)
		switch {
		case errors.Is(err, saga.ErrWrongState):
			continue
		case err != nil:
			w.t.Fatalf("sagatest: walk saga %s: %v: %s refused: %v", w.d.Type, path, ev.name, err)
		}
		next := append(slices.Clone(path), ev.name)
		w.send(next, n, na, ev.at)
		np, err := p.Next(n, na, ev.at)
		if err != nil {
			w.t.Fatalf("sagatest: walk saga %s: %v: %v", w.d.Type, next, err)
		}
		if k := w.key(np, len(next)); !w.explored[k] {
			w.explored[k] = true
			w.walk(np, next)
		}
	}
}

// send builds the messages acts of s, when Payload asks for it.
func (w *walker) send(path []string, s saga.State, acts []saga.Action, at time.Time) {
	w.t.Helper()
	if !w.build {
		return
	}
	if _, err := build(w.d, s, acts, at); err != nil {
		w.t.Fatalf("sagatest: walk saga %s: %v: %v", w.d.Type, path, err)
	}
}

// build makes the messages acts of saga s with the steps' builders, as the
// Orchestrator does when it writes them to the outbox.
func build(d saga.Definition, s saga.State, acts []saga.Action, at time.Time) ([]Sent, error) {
	var out []Sent
	for _, a := range acts {
		idx := stepIndex(d, a.Step)
		if idx < 0 {
			return nil, fmt.Errorf("saga %s sends the %s, which it has no step for", d.Type, action(a))
		}
		f := d.Steps[idx].Request
		if a.Compensate {
			f = d.Steps[idx].Compensate
		}
		if f == nil {
			return nil, fmt.Errorf("saga %s sends the %s, which has no builder", d.Type, action(a))
		}
		m, err := f(s.Payload)
		if err != nil {
			return nil, fmt.Errorf("build the %s: %w", action(a), err)
		}
		out = append(out, Sent{Action: a, Message: m, At: at})
	}
	return out, nil
}

// key is what the walk from p on depends on: the saga's statuses, its
// waits with their deadlines relative to the path's clock, and what the
// invariants remember of the way there (the messages sent, the steps that
// took effect or were abandoned); with MaxDepth, the events left. Two
// paths with one key have the same futures, so only the first is walked
// on: parallel steps answering in every order reach a state many ways.
func (w *walker) key(p Path, depth int) string {
	var b strings.Builder
	s := p.s
	fmt.Fprintf(&b, "%s|", s.Status)
	for _, st := range w.d.Steps {
		fmt.Fprintf(&b, "%s=%s", st.Name, s.StepStatus[st.Name])
		if wt, ok := s.Waits[st.Name]; ok {
			fmt.Fprintf(&b, "(%d,%v)", wt.Attempt, wt.Deadline.Sub(p.at))
		}
		fmt.Fprintf(&b, "%t%t%t%t,", p.sent[saga.Action{Step: st.Name}], p.sent[saga.Action{Step: st.Name, Compensate: true}],
			p.undo[st.Name], p.abandoned[st.Name])
	}
	if w.maxDepth > 0 {
		fmt.Fprintf(&b, "|%d", depth)
	}
	return b.String()
}
