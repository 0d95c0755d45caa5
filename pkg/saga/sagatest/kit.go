package sagatest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sagabox/sagabox/pkg/saga"
)

// epoch is when every saga of this package starts: a fixed clock makes
// deadlines and failure messages the same on every run.
var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// sagaID is the id of every saga of this package.
var sagaID = uuid.UUID{15: 1}

// Sent is one message a saga sent: which step's request or compensation
// (Action), the message the step's builder made of the saga's payload
// (Message: its Type, e.g. "REQUEST" or "CANCEL", and its Payload, the
// body a participant receives) and when, on the Kit's clock.
type Sent struct {
	saga.Action
	saga.Message
	At time.Time
}

// Request is the request of step, as ExpectSent takes it.
func Request(step string) saga.Action { return saga.Action{Step: step} }

// Compensation is the compensation of step, as ExpectSent takes it.
func Compensation(step string) saga.Action { return saga.Action{Step: step, Compensate: true} }

// Kit runs one saga of a Definition in a test, given/when/then, on a fake
// clock: given New, when Reply, ReplyBody, Advance, Abort, Retry or
// MarkCompensated, then the Expect methods about the last of those events,
// each returning the Kit so that they chain:
//
//	k := sagatest.New(t, d, payload)
//	k.ExpectSent(sagatest.Request("credit-approval"))
//	k.Reply("credit-approval", saga.StepSucceeded).
//		ExpectSent(sagatest.Request("payment")).
//		ExpectStep("payment", saga.StepStarted)
//
// Every event is what the Orchestrator would do at the Kit's clock: the
// pure function of pkg/saga applied to the saga's state, its messages
// built with the steps' builders. An event the engine refuses — a reply
// that is late or early, an operator action that does not apply, a
// message whose builder fails (the Orchestrator's transaction would roll
// back) — changes nothing; the test must say so with ExpectRefused before
// its next event or expectation, or it fails. An accepted event that
// breaks an invariant (see Path) fails the test at once.
//
// A failed expectation calls t.Errorf with the event, what was expected
// and the saga's state; misuse and broken invariants call t.Fatalf. A Kit
// belongs to one test goroutine.
type Kit struct {
	t    testing.TB
	d    saga.Definition
	path Path
	now  time.Time
	all  []Sent
	last []Sent
	// event describes the last event for failure messages; refused is its
	// error if the engine refused it, acked whether ExpectRefused saw that.
	event   string
	refused error
	acked   bool
}

// New starts a saga of d with payload (encoded as JSON: a json.RawMessage
// is taken as it is, compacted) by saga.Begin on the fake clock,
// which reads 2025-01-01T00:00:00Z: its first step's request is sent, as
// ExpectSent sees. It fails t if d is not valid or the saga cannot start
// (the payload cannot be encoded, the first request cannot be built).
func New(t testing.TB, d saga.Definition, payload any) *Kit {
	t.Helper()
	if err := d.Validate(); err != nil {
		t.Fatalf("sagatest: %v", err)
	}
	body, err := json.Marshal(payload)
	if err != nil {
		t.Fatalf("sagatest: start saga %s: encode the payload: %v", d.Type, err)
	}
	k := &Kit{t: t, d: d, now: epoch, event: "the start"}
	s, acts := saga.Begin(d, sagaID, body, k.now)
	msgs, err := build(d, s, acts, k.now)
	if err != nil {
		t.Fatalf("sagatest: start saga %s: %v", d.Type, err)
	}
	if k.path, err = NewPath(d, s, acts, k.now); err != nil {
		t.Fatalf("sagatest: start saga %s: %v", d.Type, err)
	}
	k.last, k.all = msgs, slices.Clone(msgs)
	t.Cleanup(func() {
		if k.refused != nil && !k.acked && !t.Failed() {
			t.Errorf("sagatest: %s was refused (%v) and no ExpectRefused said so", k.event, k.refused)
		}
	})
	return k
}

// Reply applies a reply of step saying outcome (saga.Transition) at the
// current time. A reply the saga does not wait for is refused with
// saga.ErrUnexpectedReply (late) or saga.ErrEarlyReply (ahead of the
// state).
func (k *Kit) Reply(step string, outcome saga.StepStatus) *Kit {
	k.t.Helper()
	k.apply(fmt.Sprintf("Reply(%q, %s)", step, outcome), func(s saga.State, now time.Time) (saga.State, []saga.Action, error) {
		return saga.Transition(k.d, s, step, outcome, now)
	})
	return k
}

// ReplyBody applies a reply of step whose body is body, read by the step's
// Outcome as the Orchestrator reads it (e.g. a body made with the step
// contract's EncodeReply), then like Reply. A body Outcome cannot read is
// refused with saga.ErrBadReply; a step the definition does not have, with
// saga.ErrUnexpectedReply.
func (k *Kit) ReplyBody(step string, body []byte) *Kit {
	k.t.Helper()
	k.apply(fmt.Sprintf("ReplyBody(%q, %s)", step, body), func(s saga.State, now time.Time) (saga.State, []saga.Action, error) {
		idx := stepIndex(k.d, step)
		if idx < 0 {
			return s, nil, fmt.Errorf("%w: saga %s has no step %q", saga.ErrUnexpectedReply, k.d.Type, step)
		}
		outcome, err := k.d.Steps[idx].Outcome(body)
		if err != nil {
			return s, nil, fmt.Errorf("read %s reply: %w: %w", step, saga.ErrBadReply, err)
		}
		return saga.Transition(k.d, s, step, outcome, now)
	})
	return k
}

// Abort is the operator aborting the saga (saga.Abort) at the current
// time; refused with saga.ErrWrongState unless the saga is STARTED.
func (k *Kit) Abort() *Kit {
	k.t.Helper()
	k.apply("Abort()", func(s saga.State, now time.Time) (saga.State, []saga.Action, error) {
		return saga.Abort(k.d, s, now)
	})
	return k
}

// Retry is the operator sending every awaited message again (saga.Retry)
// at the current time; refused with saga.ErrWrongState when nothing waits.
func (k *Kit) Retry() *Kit {
	k.t.Helper()
	return k.RetryStep("")
}

// RetryStep is the operator sending again the message step waits for
// (saga.Retry) at the current time; refused with saga.ErrWrongState when
// step does not wait.
func (k *Kit) RetryStep(step string) *Kit {
	k.t.Helper()
	k.apply(fmt.Sprintf("Retry(%q)", step), func(s saga.State, now time.Time) (saga.State, []saga.Action, error) {
		return saga.Retry(k.d, s, step, now)
	})
	return k
}

// MarkCompensated is the operator confirming the compensation of step by
// hand (saga.MarkCompensated) at the current time; refused with
// saga.ErrWrongState unless the saga waits for that compensation.
func (k *Kit) MarkCompensated(step string) *Kit {
	k.t.Helper()
	k.apply(fmt.Sprintf("MarkCompensated(%q)", step), func(s saga.State, now time.Time) (saga.State, []saga.Action, error) {
		return saga.MarkCompensated(k.d, s, step, now)
	})
	return k
}

// maxTimeouts bounds the deadlines one Advance fires: each one moves the
// next deadline at least a step's Timeout on, so only an Advance of years
// over a short Timeout comes near it.
const maxTimeouts = 100_000

// Advance moves the fake clock d on. Every deadline that passes on the way
// fires at its time, as a deadline sweeper that never lags would fire it
// (saga.Timeout): a request is sent again, or its step abandoned once its
// retries are spent; a compensation is sent again. The next deadline then
// runs from there, so one Advance may fire several; ExpectSent sees the
// messages of all of them, in order. If the messages of a deadline cannot
// be built, that timeout is refused (the sweeper would fail and try again
// at its next sweep) and no later deadline fires, but the clock moves.
func (k *Kit) Advance(d time.Duration) *Kit {
	k.t.Helper()
	k.pending()
	if d < 0 {
		k.t.Fatalf("sagatest: Advance(%s): the clock cannot go back", d)
	}
	k.begin(fmt.Sprintf("Advance(%s)", d))
	target := k.now.Add(d)
	for i := 0; ; i++ {
		s := k.path.s
		if s.Status.Done() || s.Deadline.IsZero() || s.Deadline.After(target) {
			break
		}
		if i == maxTimeouts {
			k.t.Fatalf("sagatest: %s fired %d deadlines: %s", k.event, i, describe(k.d, s, k.now))
		}
		k.now = later(k.now, s.Deadline)
		if !k.step(func(s saga.State, now time.Time) (saga.State, []saga.Action, error) {
			return saga.Timeout(k.d, s, now)
		}) {
			break
		}
	}
	k.now = target
	return k
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// pending fails the test when the last event was refused and no
// ExpectRefused said so: whatever the test expects next would be about a
// state the test does not know it is in.
func (k *Kit) pending() {
	k.t.Helper()
	if k.refused != nil && !k.acked {
		k.t.Fatalf("sagatest: %s was refused (%v); say so with ExpectRefused before going on. Saga: %s",
			k.event, k.refused, describe(k.d, k.path.s, k.now))
	}
}

// begin starts a new event.
func (k *Kit) begin(event string) {
	k.event, k.refused, k.acked, k.last = event, nil, false, nil
}

// apply runs one event at the current time.
func (k *Kit) apply(event string, f func(saga.State, time.Time) (saga.State, []saga.Action, error)) {
	k.t.Helper()
	k.pending()
	k.begin(event)
	k.step(f)
}

// step applies f to the saga at the current time within the current event:
// it builds the messages, checks the invariants and records the result,
// or records the refusal. It reports whether f was accepted.
func (k *Kit) step(f func(saga.State, time.Time) (saga.State, []saga.Action, error)) bool {
	k.t.Helper()
	n, acts, err := f(k.path.State(), k.now)
	var msgs []Sent
	if err == nil {
		msgs, err = build(k.d, n, acts, k.now)
	}
	if err != nil {
		k.refused = err
		return false
	}
	p, err := k.path.Next(n, acts, k.now)
	if err != nil {
		k.t.Fatalf("sagatest: %s broke an invariant: %v", k.event, err)
	}
	k.path = p
	k.last = append(k.last, msgs...)
	k.all = append(k.all, msgs...)
	return true
}

// fail reports a failed expectation about the last event.
func (k *Kit) fail(format string, args ...any) {
	k.t.Helper()
	k.t.Errorf("sagatest: after %s: %s. Saga: %s", k.event, fmt.Sprintf(format, args...), describe(k.d, k.path.s, k.now))
}

// ExpectSent expects the last event to have sent exactly want, in order:
// each a Request or a Compensation. ExpectSent() expects nothing sent.
func (k *Kit) ExpectSent(want ...saga.Action) *Kit {
	k.t.Helper()
	k.pending()
	got := make([]saga.Action, len(k.last))
	for i, m := range k.last {
		got[i] = m.Action
	}
	if !slices.Equal(got, want) {
		k.fail("sent %s, want %s", actions(got), actions(want))
	}
	return k
}

// ExpectStatus expects the saga to be want.
func (k *Kit) ExpectStatus(want saga.Status) *Kit {
	k.t.Helper()
	k.pending()
	if got := k.path.s.Status; got != want {
		k.fail("saga status %s, want %s", got, want)
	}
	return k
}

// ExpectStep expects step to be want ("" for a step not started).
func (k *Kit) ExpectStep(step string, want saga.StepStatus) *Kit {
	k.t.Helper()
	k.pending()
	if !k.d.HasStep(step) {
		k.fail("want step %s %s, but saga %s has no step %s", step, orNone(want), k.d.Type, step)
		return k
	}
	if got := k.path.s.StepStatus[step]; got != want {
		k.fail("step %s %s, want %s", step, orNone(got), orNone(want))
	}
	return k
}

// ExpectCompensated expects every one of steps to be COMPENSATED.
func (k *Kit) ExpectCompensated(steps ...string) *Kit {
	k.t.Helper()
	for _, st := range steps {
		k.ExpectStep(st, saga.StepCompensated)
	}
	return k
}

// ExpectWait expects step to wait for the reply to its message, sent again
// attempt times, with a deadline in from now (0: none).
func (k *Kit) ExpectWait(step string, attempt int, in time.Duration) *Kit {
	k.t.Helper()
	k.pending()
	w, ok := k.path.s.Waits[step]
	var want time.Time
	if in != 0 {
		want = k.now.Add(in)
	}
	switch {
	case !ok:
		k.fail("step %s does not wait", step)
	case w.Attempt != attempt || !w.Deadline.Equal(want):
		k.fail("step %s waits at attempt %d until %v, want attempt %d until %v", step, w.Attempt, w.Deadline, attempt, want)
	}
	return k
}

// ExpectAttempt expects the message the saga waits for to have been sent
// again n times (0: sent once).
func (k *Kit) ExpectAttempt(n int) *Kit {
	k.t.Helper()
	k.pending()
	if got := k.path.s.Attempt; got != n {
		k.fail("attempt %d, want %d", got, n)
	}
	return k
}

// ExpectDeadline expects the saga's deadline to be in from now on the fake
// clock; 0 expects no deadline.
func (k *Kit) ExpectDeadline(in time.Duration) *Kit {
	k.t.Helper()
	k.pending()
	var want time.Time
	if in != 0 {
		want = k.now.Add(in)
	}
	if got := k.path.s.Deadline; !got.Equal(want) {
		if got.IsZero() {
			k.fail("no deadline, want one in %s", in)
		} else {
			k.fail("deadline in %s, want in %s", got.Sub(k.now), in)
		}
	}
	return k
}

// ExpectRefused expects the last event to have been refused with an error
// that matches err (errors.Is; nil matches any error), changing nothing
// and sending nothing (for Advance: the deadline that could not be
// handled; those before it were). It lets the test go on after a refused
// event.
func (k *Kit) ExpectRefused(err error) *Kit {
	k.t.Helper()
	switch {
	case k.refused == nil:
		k.fail("it was accepted, want it refused with %v", err)
	case err != nil && !errors.Is(k.refused, err):
		k.fail("refused with %v, want %v", k.refused, err)
	}
	k.acked = true
	return k
}

// State returns the saga's state.
func (k *Kit) State() saga.State { return k.path.State() }

// Now returns the fake clock: 2025-01-01T00:00:00Z plus every Advance.
func (k *Kit) Now() time.Time { return k.now }

// Sent returns the messages the last event sent.
func (k *Kit) Sent() []Sent { return slices.Clone(k.last) }

// Messages returns every message the saga sent since New, in order.
func (k *Kit) Messages() []Sent { return slices.Clone(k.all) }
