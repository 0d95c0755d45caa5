package saga_test

import (
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/pkg/saga/sagatest"
)

// The events of FuzzTransitions.
const (
	evReply = iota
	evTimeout
	evAbort
	evRetry
	evMark
	evKinds
)

// fuzzOutcomes are the outcomes a fuzzed reply may carry: the three a reply
// maps to, and the others, which no reply may carry.
var fuzzOutcomes = []saga.StepStatus{saga.StepSucceeded, saga.StepFailed, saga.StepCompensated,
	saga.StepStarted, saga.StepAbandoned, saga.StepCompensating, "WHAT"}

// FuzzTransitions drives a saga of saga.TestDef through an arbitrary
// sequence of events, two bytes each: a reply of any step with any outcome
// (also to a step that waits for nothing, also after the end), a deadline
// (passed or not), an abort, a retry or a hand-made compensation, each
// some seconds after the one before. After every event it checks what the
// exhaustive walk checks (sagatest.Path): an event that does not apply is
// refused and changes nothing; an ended saga is absorbing — no event
// changes it; a running saga waits for exactly the message it sent; an
// ended one has compensated every step that took effect or may have (the
// money is back); replies are judged early or late as they should be.
func FuzzTransitions(f *testing.F) {
	// Seeds: the paths of TestTransition and TestOperatorActions — success,
	// a failure compensated, a timeout retried then abandoned, an abort, a
	// compensation marked by hand — and replies that do not fit.
	ev := func(kind, step, outcome int) []byte {
		return []byte{byte(kind), byte(step + 4*outcome)}
	}
	path := func(evs ...[]byte) []byte {
		var b []byte
		for _, e := range evs {
			b = append(b, e...)
		}
		return b
	}
	f.Add(path(ev(evReply, 0, 0), ev(evReply, 1, 0), ev(evReply, 2, 0), ev(evReply, 3, 0)))                      // every step succeeds
	f.Add(path(ev(evReply, 0, 0), ev(evReply, 1, 0), ev(evReply, 2, 1), ev(evReply, 0, 2)))                      // c fails: a compensated
	f.Add(path(ev(evTimeout, 0, 0), ev(evTimeout, 0, 0), ev(evTimeout, 0, 0), ev(evReply, 0, 2)))                // a retried, then abandoned
	f.Add(path(ev(evReply, 0, 0), ev(evAbort, 0, 0), ev(evMark, 0, 0), ev(evReply, 0, 2)))                       // abort, mark by hand
	f.Add(path(ev(evRetry, 0, 0), ev(evReply, 3, 0), ev(evReply, 0, 4), ev(evReply, 0, 1), ev(evReply, 0, 0)))   // replies that do not fit
	f.Add(path(ev(evReply, 0, 0), ev(evReply, 1, 1), ev(evTimeout, 0, 0), ev(evRetry, 0, 0), ev(evReply, 0, 2))) // compensation re-sent
	f.Add(path(ev(evReply, 0, 1), ev(evReply, 0, 0), ev(evTimeout, 0, 0), ev(evAbort, 0, 0), ev(evMark, 2, 0)))  // after the end
	f.Add([]byte{})
	f.Fuzz(fuzzTransitions)
}

func fuzzTransitions(t *testing.T, events []byte) {
	def := saga.TestDef
	s, acts := saga.Begin(def, uuid.Nil, nil, saga.TestNow)
	clock := saga.TestNow
	p, err := sagatest.NewPath(def, s, acts, clock)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	for i := 0; i+1 < len(events) && i < 400; i += 2 {
		kind, arg := events[i]%evKinds, events[i+1]
		step := def.Steps[int(arg)%len(def.Steps)].Name
		outcome := fuzzOutcomes[int(arg/4)%len(fuzzOutcomes)]
		clock = clock.Add(time.Duration(1+arg%64) * time.Second) // a later transaction
		var (
			n   saga.State
			na  []saga.Action
			err error
		)
		switch kind {
		case evReply:
			n, na, err = saga.Transition(def, s, step, outcome, clock)
		case evTimeout:
			if arg%2 == 0 && !s.Deadline.IsZero() && s.Deadline.After(clock) {
				clock = s.Deadline // the sweeper comes at the deadline
			}
			n, na, err = saga.Timeout(def, s, clock)
		case evAbort:
			n, na, err = saga.Abort(def, s, clock)
		case evRetry:
			n, na, err = saga.Retry(def, s, "", clock)
		case evMark:
			n, na, err = saga.MarkCompensated(def, s, step, clock)
		}
		if err != nil {
			if !errors.Is(err, saga.ErrUnexpectedReply) && !errors.Is(err, saga.ErrEarlyReply) && !errors.Is(err, saga.ErrNotDue) && !errors.Is(err, saga.ErrWrongState) {
				t.Fatalf("event %d (%d %s %s): unexpected error %v", i/2, kind, step, outcome, err)
			}
			if len(na) != 0 || !sameState(n, s) {
				t.Fatalf("event %d (%d %s %s) refused with %v but changed the saga: %+v → %+v, sends %v", i/2, kind, step, outcome, err, s, n, na)
			}
			continue
		}
		if s.Status.Done() {
			t.Fatalf("event %d (%d %s %s) changed the ended saga %+v into %+v", i/2, kind, step, outcome, s, n)
		}
		if kind == evReply && outcome != saga.StepSucceeded && outcome != saga.StepFailed && outcome != saga.StepCompensated {
			t.Fatalf("event %d: a reply saying %s was applied", i/2, outcome)
		}
		if p, err = p.Next(n, na, clock); err != nil {
			t.Fatalf("event %d (%d %s %s) from %+v: %v", i/2, kind, step, outcome, s, err)
		}
		s = n
	}
}

// sameState is cmp.Equal for states, without its reflection: the fuzzer
// calls it for every refused event.
func sameState(a, b saga.State) bool {
	return a.ID == b.ID && a.Type == b.Type && string(a.Payload) == string(b.Payload) && a.CurrentStep == b.CurrentStep &&
		maps.Equal(a.StepStatus, b.StepStatus) && a.Status == b.Status && a.Attempt == b.Attempt &&
		a.Deadline.Equal(b.Deadline) && a.StatusSince.Equal(b.StatusSince) && a.Version == b.Version &&
		a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}
