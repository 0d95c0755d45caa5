// Package sagatest tests a saga Definition without infrastructure: no
// database, no broker, no real clock. It drives the pure functions of
// pkg/saga (Begin, Transition, Timeout, Abort, Retry, MarkCompensated) as
// the Orchestrator and its deadline sweeper do, and checks the engine's
// invariants after every event:
//
//   - Walk explores every path of a definition — every reply, deadline and
//     operator action in every order — and fails the test on the first
//     broken invariant.
//   - Kit is a given/when/then helper with a fake clock, for scenarios
//     written by hand, with the messages the definition's builders make.
//   - Path is the invariant checker both use, for a test that drives a saga
//     its own way (a fuzz target).
//
// Nothing here touches a database or the wall clock; everything is
// deterministic, so every test may run in parallel.
package sagatest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sagabox/sagabox/pkg/saga"
)

// Path follows one saga of a Definition along a sequence of events and
// checks, in every state it reaches, the invariants of the engine:
//
//   - an ended saga (SUCCEEDED or ABORTED) sends nothing, waits for
//     nothing, and no event changes it any more;
//   - a SUCCEEDED saga has every step SUCCEEDED;
//   - an ABORTED saga has only FAILED and COMPENSATED steps (besides steps
//     never started), and every step that took effect, or may have (it
//     SUCCEEDED, or was ABANDONED), COMPENSATED: the effects are undone;
//   - a running saga waits for a reply, from exactly its STARTED steps
//     while STARTED and its COMPENSATING steps while ABORTING (an ABORTING
//     saga has no step STARTED), each until the deadline its Deadline
//     policy gives the attempt, counted from the event that sent it; an
//     event sends each message at most once and leaves the other waits
//     as they were; the saga's Deadline is the earliest, its CurrentStep a
//     waiting step and its Attempt that step's;
//   - while STARTED, the steps started are exactly those whose
//     dependencies all SUCCEEDED: a step starts as soon as it can and
//     never before;
//   - a SUCCEEDED step is compensated only when no step that depends on
//     it is SUCCEEDED or COMPENSATING, and an ABANDONED step only when no
//     step is SUCCEEDED any more and every COMPENSATING one was abandoned
//     too;
//   - StatusSince changes exactly when Status does, to the event's time;
//   - a reply to a message the saga sent (by then or before) is never
//     judged early (saga.ErrEarlyReply), or it would be retried for
//     nothing; a reply to a message it has not sent but may still send is
//     early (the state that sent it is not visible yet); a reply to one it
//     can never send (the saga ended; the compensation of a step that
//     failed, has none or was undone) is late (saga.ErrUnexpectedReply).
//
// A Path is a value: Next returns the longer path and leaves the receiver
// as it was, so a walk can branch from any state and copies may be used
// from several goroutines.
type Path struct {
	d    saga.Definition
	s    saga.State
	acts []saga.Action
	at   time.Time
	// undo holds the steps that took effect or may have: they succeeded or
	// were abandoned on the way. abandoned holds the abandoned ones.
	undo, abandoned map[string]bool
	// sent holds every message the saga sent on the way, re-sends as one.
	sent   map[saga.Action]bool
	events int
}

// NewPath starts a path at s, the state saga.Begin returned for a saga of d
// started at at, which sent acts, and checks that state's invariants.
func NewPath(d saga.Definition, s saga.State, acts []saga.Action, at time.Time) (Path, error) {
	p := Path{d: d, undo: map[string]bool{}, abandoned: map[string]bool{}, sent: map[saga.Action]bool{}}
	return p.enter(s, acts, at)
}

// Next returns p extended by one event at at that the engine accepted: it
// turned p's state into next and sent acts (a refused event changes
// nothing and is not a step of the path). The error names the first
// invariant next breaks; the path returned with it is p. p is not
// modified.
func (p Path) Next(next saga.State, acts []saga.Action, at time.Time) (Path, error) {
	prev, next := p.s, next.Upgrade() // a state as the engine reads it

	if prev.Status.Done() {
		return p, fmt.Errorf("an event changed the ended saga %s into %s", describe(p.d, prev, at), describe(p.d, next, at))
	}
	if err := checkStatusSince(prev, next, at); err != nil {
		return p, err
	}
	if len(acts) == 0 && next.Status == prev.Status && maps.Equal(next.StepStatus, prev.StepStatus) && next.Deadline.Equal(prev.Deadline) {
		return p, fmt.Errorf("an event changed nothing and sent nothing: %s", describe(p.d, next, at))
	}
	if err := checkWaitsKept(p.d, prev, next, acts, at); err != nil {
		return p, err
	}
	n := p
	n.undo, n.abandoned = track(prev, next, p.undo, p.abandoned)
	n.events++
	n, err := n.enter(next, acts, at)
	if err != nil {
		return p, err
	}
	return n, nil
}

// enter returns p at s, reached at at by an event that sent acts, once s
// keeps the invariants.
func (p Path) enter(s saga.State, acts []saga.Action, at time.Time) (Path, error) {
	s = s.Upgrade()
	if err := checkState(p.d, s, acts, at, p.undo, p.abandoned); err != nil {
		return p, err
	}
	sent := maps.Clone(p.sent)
	for _, a := range acts {
		sent[a] = true
	}
	if err := checkReplies(p.d, s, sent, at); err != nil {
		return p, err
	}
	p.s, p.acts, p.at, p.sent = s, acts, at, sent
	return p, nil
}

// State returns the saga's state at the end of the path.
func (p Path) State() saga.State { return clone(p.s) }

// Sent returns the messages the path's last event sent (saga.Begin's, for
// a path of no event).
func (p Path) Sent() []saga.Action { return append([]saga.Action(nil), p.acts...) }

// Len returns the number of events on the path.
func (p Path) Len() int { return p.events }

// checkState reports what is wrong with state s of d, reached at clock by
// an event that sent acts, given the steps that succeeded or were
// abandoned on its path (undo) and the abandoned ones.
func checkState(d saga.Definition, s saga.State, acts []saga.Action, clock time.Time, undo, abandoned map[string]bool) error {
	if s.Status.Done() {
		if len(acts) != 0 || s.Attempt != 0 || !s.Deadline.IsZero() || len(s.Waits) != 0 {
			return fmt.Errorf("ended saga still sends %s, waits %v, attempt %d, deadline %v: %s",
				actions(acts), s.Waits, s.Attempt, s.Deadline, describe(d, s, clock))
		}
		for _, st := range d.Steps {
			ss := s.StepStatus[st.Name]
			switch {
			case s.Status == saga.StatusSucceeded && ss != saga.StepSucceeded,
				s.Status == saga.StatusAborted && ss != "" && ss != saga.StepFailed && ss != saga.StepCompensated,
				s.Status == saga.StatusAborted && undo[st.Name] && ss != saga.StepCompensated:
				return fmt.Errorf("%s saga has step %s %s: %s", s.Status, st.Name, orNone(ss), describe(d, s, clock))
			}
		}
		return nil
	}
	if len(s.Waits) == 0 {
		return fmt.Errorf("running saga waits for nothing: %s", describe(d, s, clock))
	}
	for i, st := range d.Steps {
		ss := s.StepStatus[st.Name]
		_, waits := s.Waits[st.Name]
		wantWait := s.Status == saga.StatusStarted && ss == saga.StepStarted || s.Status == saga.StatusAborting && ss == saga.StepCompensating
		switch {
		case waits != wantWait:
			return fmt.Errorf("step %s is %s and waits=%t: %s", st.Name, orNone(ss), waits, describe(d, s, clock))
		case s.Status == saga.StatusAborting && ss == saga.StepStarted:
			return fmt.Errorf("aborting saga has step %s still STARTED: %s", st.Name, describe(d, s, clock))
		case s.Status == saga.StatusStarted && ss != "" && ss != saga.StepStarted && ss != saga.StepSucceeded:
			return fmt.Errorf("running saga has step %s %s: %s", st.Name, ss, describe(d, s, clock))
		case s.Status == saga.StatusStarted && (ss != "") != depsSucceeded(d, s, i):
			return fmt.Errorf("step %s is %s but its dependencies %v are %s: %s", st.Name, orNone(ss), d.Deps(i),
				statuses(s, d.Deps(i)), describe(d, s, clock))
		}
	}
	if err := checkSummary(d, s, clock); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, a := range acts {
		idx := stepIndex(d, a.Step)
		wantStep := saga.StepStarted
		if a.Compensate {
			wantStep = saga.StepCompensating
		}
		if seen[a.Step] {
			return fmt.Errorf("sends the %s twice: %s", action(a), describe(d, s, clock))
		}
		if idx < 0 || s.StepStatus[a.Step] != wantStep {
			return fmt.Errorf("sends the %s but the saga is %s", action(a), describe(d, s, clock))
		}
		seen[a.Step] = true
		w := s.Waits[a.Step]
		if want := deadlineAt(d.Steps[idx].Deadline, clock, w.Attempt); !w.Deadline.Equal(want) {
			return fmt.Errorf("step %s: deadline %v for attempt %d sent at %v, want %v: %s", a.Step, w.Deadline, w.Attempt, clock, want, describe(d, s, clock))
		}
		if !a.Compensate {
			continue
		}
		if abandoned[a.Step] {
			for _, other := range d.Steps {
				if ss := s.StepStatus[other.Name]; ss == saga.StepSucceeded || ss == saga.StepCompensating && !abandoned[other.Name] {
					return fmt.Errorf("abandoned step %s compensated while step %s is %s: %s", a.Step, other.Name, ss, describe(d, s, clock))
				}
			}
			continue
		}
		for j := idx + 1; j < len(d.Steps); j++ {
			dep := d.Steps[j].Name
			if ss := s.StepStatus[dep]; slices.Contains(d.Deps(j), a.Step) && (ss == saga.StepSucceeded || ss == saga.StepCompensating) {
				return fmt.Errorf("step %s compensated while %s, which depends on it, is %s: %s", a.Step, dep, ss, describe(d, s, clock))
			}
		}
	}
	return nil
}

// checkSummary reports saga-wide fields of running saga s that do not sum
// up its Waits: Deadline the earliest, CurrentStep a waiting step, Attempt
// its.
func checkSummary(d saga.Definition, s saga.State, clock time.Time) error {
	var earliest time.Time
	for _, w := range s.Waits {
		if !w.Deadline.IsZero() && (earliest.IsZero() || w.Deadline.Before(earliest)) {
			earliest = w.Deadline
		}
	}
	w, waits := s.Waits[s.CurrentStep]
	switch {
	case !s.Deadline.Equal(earliest):
		return fmt.Errorf("saga deadline %v, but the earliest of its waits is %v: %s", s.Deadline, earliest, describe(d, s, clock))
	case !waits:
		return fmt.Errorf("current step %s does not wait: %s", s.CurrentStep, describe(d, s, clock))
	case s.Attempt != w.Attempt:
		return fmt.Errorf("saga attempt %d, its current step's %d: %s", s.Attempt, w.Attempt, describe(d, s, clock))
	}
	return nil
}

// checkWaitsKept reports a wait of prev that the event prev → next
// changed without sending its message again: a step that still waits
// for the same message keeps its attempt and deadline.
func checkWaitsKept(d saga.Definition, prev, next saga.State, acts []saga.Action, at time.Time) error {
	sent := map[string]bool{}
	for _, a := range acts {
		sent[a.Step] = true
	}
	for name, w := range next.Waits {
		if sent[name] {
			continue
		}
		pw, ok := prev.Waits[name]
		if !ok || pw != w || prev.StepStatus[name] != next.StepStatus[name] {
			return fmt.Errorf("step %s waits (attempt %d, deadline %v) without a message sent for it; before: %t (attempt %d, deadline %v): %s",
				name, w.Attempt, w.Deadline, ok, pw.Attempt, pw.Deadline, describe(d, next, at))
		}
	}
	return nil
}

// depsSucceeded reports whether every dependency of step idx SUCCEEDED in s.
func depsSucceeded(d saga.Definition, s saga.State, idx int) bool {
	for _, dep := range d.Deps(idx) {
		if s.StepStatus[dep] != saga.StepSucceeded {
			return false
		}
	}
	return true
}

func statuses(s saga.State, steps []string) string {
	out := make([]string, len(steps))
	for i, st := range steps {
		out[i] = st + "=" + orNone(s.StepStatus[st])
	}
	return "[" + strings.Join(out, " ") + "]"
}

// checkReplies reports a reply misjudged in state s of d, given every
// message the saga sent on its way there (see Path). Replies are tried for
// every step and every outcome a reply can carry.
func checkReplies(d saga.Definition, s saga.State, sent map[saga.Action]bool, at time.Time) error {
	for _, st := range d.Steps {
		for _, outcome := range []saga.StepStatus{saga.StepSucceeded, saga.StepFailed, saga.StepCompensated} {
			answers := saga.Action{Step: st.Name, Compensate: outcome == saga.StepCompensated}
			cur := s.StepStatus[st.Name]
			// A request is sent only while the saga runs forward; a
			// compensation while the step can still be undone — once it
			// started, or before that while the saga may still start it.
			mayStillSend := !s.Status.Done() && !sent[answers]
			if answers.Compensate {
				mayStillSend = mayStillSend && st.Compensate != nil && cur != saga.StepFailed && cur != saga.StepCompensated &&
					(cur != "" || s.Status == saga.StatusStarted)
			} else {
				mayStillSend = mayStillSend && s.Status == saga.StatusStarted
			}
			_, _, err := saga.Transition(d, s, st.Name, outcome, at)
			switch {
			case sent[answers] && errors.Is(err, saga.ErrEarlyReply):
				return fmt.Errorf("reply %s to the %s, which was sent, judged early: %s", outcome, action(answers), describe(d, s, at))
			case mayStillSend && !errors.Is(err, saga.ErrEarlyReply):
				return fmt.Errorf("reply %s to the %s, not sent yet, not judged early (%v): %s", outcome, action(answers), err, describe(d, s, at))
			case !sent[answers] && !mayStillSend && !errors.Is(err, saga.ErrUnexpectedReply):
				return fmt.Errorf("reply %s to the %s, which can never be sent, not judged late (%v): %s", outcome, action(answers), err, describe(d, s, at))
			}
		}
	}
	return nil
}

// checkStatusSince reports a transition prev → next at at whose
// StatusSince does not say when the saga entered its status: at if the
// status changed, else unchanged.
func checkStatusSince(prev, next saga.State, at time.Time) error {
	want := prev.StatusSince
	if next.Status != prev.Status {
		want = at
	}
	if !next.StatusSince.Equal(want) {
		return fmt.Errorf("status %s → %s at %v but status since %v → %v", prev.Status, next.Status, at, prev.StatusSince, next.StatusSince)
	}
	return nil
}

// track returns undo and abandoned (see Path) after the transition
// prev → next; it does not modify its arguments.
func track(prev, next saga.State, undo, abandoned map[string]bool) (map[string]bool, map[string]bool) {
	nu, na := maps.Clone(undo), maps.Clone(abandoned)
	for name, ss := range next.StepStatus {
		was := prev.StepStatus[name]
		if ss == saga.StepSucceeded {
			nu[name] = true
		}
		// A step left while it waited for its reply was abandoned (Abort
		// or its last timeout), whether it stays ABANDONED or is compensated
		// on the spot.
		if was == saga.StepStarted && (ss == saga.StepAbandoned || ss == saga.StepCompensating || ss == saga.StepCompensated) {
			nu[name], na[name] = true, true
		}
	}
	return nu, na
}

// deadlineAt is the deadline policy p gives the attempt-th message sent at
// sent: the invariant's own statement of Deadline.Wait's meaning.
func deadlineAt(p saga.Deadline, sent time.Time, attempt int) time.Time {
	if p.Timeout <= 0 {
		return time.Time{}
	}
	return sent.Add(p.Wait(attempt))
}

func stepIndex(d saga.Definition, name string) int {
	for i, st := range d.Steps {
		if st.Name == name {
			return i
		}
	}
	return -1
}

func clone(s saga.State) saga.State {
	s.StepStatus = maps.Clone(s.StepStatus)
	s.Waits = maps.Clone(s.Waits)
	return s
}

// describe is s as failure messages show it, its deadline relative to now:
// "ABORTING saga order-placement at payment (attempt 0, deadline in 30s);
// steps credit-approval=COMPENSATED payment=COMPENSATING".
func describe(d saga.Definition, s saga.State, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s saga %s", orNone(saga.StepStatus(s.Status)), d.Type)
	if !s.Status.Done() {
		fmt.Fprintf(&b, " at %s (attempt %d, ", s.CurrentStep, s.Attempt)
		if s.Deadline.IsZero() {
			b.WriteString("no deadline)")
		} else {
			fmt.Fprintf(&b, "deadline in %s)", s.Deadline.Sub(now))
		}
	}
	b.WriteString("; steps")
	for _, st := range d.Steps {
		fmt.Fprintf(&b, " %s=%s", st.Name, orNone(s.StepStatus[st.Name]))
		if w, ok := s.Waits[st.Name]; ok && len(s.Waits) > 1 {
			fmt.Fprintf(&b, "(attempt %d", w.Attempt)
			if !w.Deadline.IsZero() {
				fmt.Fprintf(&b, ", deadline in %s", w.Deadline.Sub(now))
			}
			b.WriteString(")")
		}
	}
	return b.String()
}

func orNone(s saga.StepStatus) string {
	if s == "" {
		return "(not started)"
	}
	return string(s)
}

// action names a message: "request of payment", "compensation of payment".
func action(a saga.Action) string {
	if a.Compensate {
		return "compensation of " + a.Step
	}
	return "request of " + a.Step
}

func actions(acts []saga.Action) string {
	if len(acts) == 0 {
		return "nothing"
	}
	names := make([]string, len(acts))
	for i, a := range acts {
		names[i] = action(a)
	}
	return "[" + strings.Join(names, ", ") + "]"
}
