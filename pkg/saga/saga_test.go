package saga

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
)

func testStep(name string, compensable bool, dl Deadline) Step {
	s := Step{
		Name:     name,
		Request:  func(p json.RawMessage) (Message, error) { return Message{Type: "REQUEST", Payload: p}, nil },
		Outcome:  func(r json.RawMessage) (StepStatus, error) { return StepStatus(r), nil },
		Deadline: dl,
	}
	if compensable {
		s.Compensate = func(p json.RawMessage) (Message, error) { return Message{Type: "CANCEL", Payload: p}, nil }
	}
	return s
}

// Four steps: a, c and d compensable, b not (its compensation is skipped);
// b has no deadline, the others different retry policies.
var def = Definition{Type: "test", Steps: []Step{
	testStep("a", true, Deadline{Timeout: 10 * time.Second, Retries: 2, MaxTimeout: 25 * time.Second}), // waits 10s, 20s, 25s, 25s…
	testStep("b", false, Deadline{}),
	testStep("c", true, Deadline{Timeout: 5 * time.Second}), // no retry, every wait 5s
	testStep("d", true, Deadline{Timeout: 10 * time.Second, Retries: 1}),
}}

type steps = map[string]StepStatus

var (
	t0  = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) // when the test states entered their status
	now = t0.Add(time.Hour)                           // when the tested transitions happen
)

// st is a state that entered status at t0 and waits with no deadline.
func st(status Status, current string, s steps) State {
	return State{Status: status, StatusSince: t0, CurrentStep: current, StepStatus: s}
}

// waiting returns s waiting for its attempt-th message until deadline.
func waiting(s State, attempt int, deadline time.Time) State {
	s.Attempt, s.Deadline = attempt, deadline
	return s
}

// since returns s as having entered its status at t.
func since(s State, t time.Time) State {
	s.StatusSince = t
	return s
}

func TestDeadlineWait(t *testing.T) {
	t.Parallel()
	tests := []struct {
		dl   Deadline
		want []time.Duration // for attempts 0, 1, 2, …
	}{
		{Deadline{}, []time.Duration{0, 0, 0}},
		{Deadline{Timeout: 10 * time.Second}, []time.Duration{10 * time.Second, 10 * time.Second, 10 * time.Second}},
		{Deadline{Timeout: 10 * time.Second, MaxTimeout: 5 * time.Second}, []time.Duration{10 * time.Second, 10 * time.Second}},
		{Deadline{Timeout: 10 * time.Second, MaxTimeout: 25 * time.Second}, []time.Duration{10 * time.Second, 20 * time.Second, 25 * time.Second, 25 * time.Second}},
		{Deadline{Timeout: time.Second, MaxTimeout: time.Hour}, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}},
	}
	for _, tc := range tests {
		for attempt, want := range tc.want {
			if got := tc.dl.Wait(attempt); got != want {
				t.Errorf("%+v.Wait(%d) = %s, want %s", tc.dl, attempt, got, want)
			}
		}
		// A compensation re-sent forever never overflows the cap.
		if got, limit := tc.dl.Wait(1<<30), max(tc.dl.Timeout, tc.dl.MaxTimeout); got != limit {
			t.Errorf("%+v.Wait(2^30) = %s, want %s", tc.dl, got, limit)
		}
	}
}

func TestBegin(t *testing.T) {
	t.Parallel()
	got, acts := Begin(def, uuid.Nil, json.RawMessage(`{}`), now)
	want := State{Type: "test", DefinitionVersion: 1, Payload: json.RawMessage(`{}`), Status: StatusStarted, StatusSince: now,
		CurrentStep: "a", StepStatus: steps{"a": StepStarted}, Deadline: now.Add(10 * time.Second),
		Waits: map[string]Wait{"a": {Deadline: now.Add(10 * time.Second)}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Action{{Step: "a"}}, acts); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
}

// transitionCase is one row of the tables below: a pure function applied
// to from, and what it must return.
type transitionCase struct {
	name    string
	from    State
	want    State
	acts    []Action
	wantErr error
}

// check runs f on tc.from and compares; on an error the state must come back
// unchanged, with no actions.
func (tc transitionCase) check(t *testing.T, f func(State) (State, []Action, error)) {
	t.Helper()
	before := tc.from.clone()
	got, acts, err := f(tc.from)
	if !errors.Is(err, tc.wantErr) {
		t.Fatalf("err = %v, want %v", err, tc.wantErr)
	}
	if diff := cmp.Diff(before, tc.from, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("input state modified (-before +after):\n%s", diff)
	}
	// States are written without Waits: the current step waits (the
	// transition functions read a state so, State.Upgrade).
	if tc.wantErr != nil {
		if diff := cmp.Diff(tc.from.Upgrade(), got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("refused transition changed state (-want +got):\n%s", diff)
		}
		if len(acts) != 0 {
			t.Errorf("refused transition produced actions %v", acts)
		}
		return
	}
	if diff := cmp.Diff(tc.want.Upgrade(), got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(tc.acts, acts); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
}

func TestTransition(t *testing.T) {
	t.Parallel()
	type replyCase struct {
		transitionCase
		step    string
		outcome StepStatus
	}
	in := func(step string, outcome StepStatus, tc transitionCase) replyCase {
		return replyCase{tc, step, outcome}
	}
	dlA, dlC := t0.Add(10*time.Second), t0.Add(5*time.Second)
	tests := []replyCase{
		in("a", StepSucceeded, transitionCase{
			name: "first step succeeds: second starts, without a deadline",
			from: waiting(st(StatusStarted, "a", steps{"a": StepStarted}), 0, dlA),
			want: st(StatusStarted, "b", steps{"a": StepSucceeded, "b": StepStarted}),
			acts: []Action{{Step: "b"}},
		}),
		in("a", StepSucceeded, transitionCase{
			name: "reply to a retried request: attempt and deadline start over for the next step",
			from: waiting(st(StatusStarted, "a", steps{"a": StepStarted}), 2, dlA),
			want: st(StatusStarted, "b", steps{"a": StepSucceeded, "b": StepStarted}),
			acts: []Action{{Step: "b"}},
		}),
		in("b", StepSucceeded, transitionCase{
			name: "next step gets its own deadline",
			from: st(StatusStarted, "b", steps{"a": StepSucceeded, "b": StepStarted}),
			want: waiting(st(StatusStarted, "c", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepStarted}), 0, now.Add(5*time.Second)),
			acts: []Action{{Step: "c"}},
		}),
		in("d", StepSucceeded, transitionCase{
			name: "last step succeeds: saga succeeds, no deadline left",
			from: waiting(st(StatusStarted, "d", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepSucceeded, "d": StepStarted}), 1, dlA),
			want: since(st(StatusSucceeded, "d", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepSucceeded, "d": StepSucceeded}), now),
		}),
		in("a", StepFailed, transitionCase{
			name: "first step fails: nothing to compensate, aborted",
			from: waiting(st(StatusStarted, "a", steps{"a": StepStarted}), 0, dlA),
			want: since(st(StatusAborted, "a", steps{"a": StepFailed}), now),
		}),
		in("b", StepFailed, transitionCase{
			name: "second step fails: first compensated, with the first step's deadline",
			from: st(StatusStarted, "b", steps{"a": StepSucceeded, "b": StepStarted}),
			want: waiting(since(st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepFailed}), now), 0, now.Add(10*time.Second)),
			acts: []Action{{Step: "a", Compensate: true}},
		}),
		in("d", StepFailed, transitionCase{
			name: "last step fails: newest compensable step first",
			from: waiting(st(StatusStarted, "d", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepSucceeded, "d": StepStarted}), 1, dlA),
			want: waiting(since(st(StatusAborting, "c", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepCompensating, "d": StepFailed}), now), 0, now.Add(5*time.Second)),
			acts: []Action{{Step: "c", Compensate: true}},
		}),
		in("c", StepCompensated, transitionCase{
			name: "compensated: step without compensation skipped, next older compensated",
			from: waiting(st(StatusAborting, "c", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepCompensating, "d": StepFailed}), 3, dlC),
			want: waiting(st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepCompensated, "c": StepCompensated, "d": StepFailed}), 0, now.Add(10*time.Second)),
			acts: []Action{{Step: "a", Compensate: true}},
		}),
		in("a", StepCompensated, transitionCase{
			name: "oldest compensated: aborted",
			from: waiting(st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepFailed}), 0, dlA),
			want: since(st(StatusAborted, "a", steps{"a": StepCompensated, "b": StepFailed}), now),
		}),
		in("c", StepFailed, transitionCase{
			name: "third step fails after a non-compensable step: it is marked, the first compensated",
			from: st(StatusStarted, "c", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepStarted}),
			want: waiting(since(st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepCompensated, "c": StepFailed}), now), 0, now.Add(10*time.Second)),
			acts: []Action{{Step: "a", Compensate: true}},
		}),
		in("c", StepCompensated, transitionCase{
			name: "succeeded steps compensated: the abandoned step is compensated last",
			from: waiting(st(StatusAborting, "c", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepCompensating, "d": StepAbandoned}), 0, dlC),
			want: waiting(st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepCompensated, "c": StepCompensated, "d": StepAbandoned}), 0, now.Add(10*time.Second)),
			acts: []Action{{Step: "a", Compensate: true}},
		}),
		in("a", StepCompensated, transitionCase{
			name: "last succeeded step compensated: now the abandoned step",
			from: waiting(st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepCompensated, "c": StepCompensated, "d": StepAbandoned}), 0, dlA),
			want: waiting(st(StatusAborting, "d", steps{"a": StepCompensated, "b": StepCompensated, "c": StepCompensated, "d": StepCompensating}), 0, now.Add(10*time.Second)),
			acts: []Action{{Step: "d", Compensate: true}},
		}),
		in("d", StepCompensated, transitionCase{
			name: "abandoned step compensated: aborted",
			from: waiting(st(StatusAborting, "d", steps{"a": StepCompensated, "b": StepCompensated, "c": StepCompensated, "d": StepCompensating}), 4, dlA),
			want: since(st(StatusAborted, "d", steps{"a": StepCompensated, "b": StepCompensated, "c": StepCompensated, "d": StepCompensated}), now),
		}),
		// Replies that do not fit change nothing. A late one (its step no
		// longer waits for it, or the saga ended) is ErrUnexpectedReply.
		{step: "a", outcome: StepSucceeded, transitionCase: transitionCase{name: "duplicate success", from: st(StatusStarted, "b", steps{"a": StepSucceeded, "b": StepStarted}), wantErr: ErrUnexpectedReply}},
		{step: "x", outcome: StepSucceeded, transitionCase: transitionCase{name: "unknown step", from: st(StatusStarted, "a", steps{"a": StepStarted}), wantErr: ErrUnexpectedReply}},
		{step: "a", outcome: StepSucceeded, transitionCase: transitionCase{name: "success while compensating", from: st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepFailed}), wantErr: ErrUnexpectedReply}},
		{step: "b", outcome: StepFailed, transitionCase: transitionCase{name: "late reply of failed step", from: st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepFailed}), wantErr: ErrUnexpectedReply}},
		{step: "b", outcome: StepCompensated, transitionCase: transitionCase{name: "compensated reply of a failed step (never compensated)", from: st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepFailed}), wantErr: ErrUnexpectedReply}},
		{step: "d", outcome: StepSucceeded, transitionCase: transitionCase{name: "late success of an abandoned step", from: st(StatusAborting, "c", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepCompensating, "d": StepAbandoned}), wantErr: ErrUnexpectedReply}},
		{step: "d", outcome: StepFailed, transitionCase: transitionCase{name: "late failure of an abandoned step", from: st(StatusAborting, "c", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepCompensating, "d": StepAbandoned}), wantErr: ErrUnexpectedReply}},
		{step: "d", outcome: StepSucceeded, transitionCase: transitionCase{name: "late success of a step being cancelled", from: st(StatusAborting, "d", steps{"a": StepCompensated, "b": StepCompensated, "c": StepCompensated, "d": StepCompensating}), wantErr: ErrUnexpectedReply}},
		{step: "a", outcome: StepCompensated, transitionCase: transitionCase{name: "second compensated reply", from: st(StatusAborting, "b", steps{"a": StepCompensated, "b": StepCompensating}), wantErr: ErrUnexpectedReply}},
		{step: "d", outcome: StepSucceeded, transitionCase: transitionCase{name: "reply after success", from: st(StatusSucceeded, "d", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepSucceeded, "d": StepSucceeded}), wantErr: ErrUnexpectedReply}},
		{step: "a", outcome: StepCompensated, transitionCase: transitionCase{name: "compensated reply after success", from: st(StatusSucceeded, "d", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepSucceeded, "d": StepSucceeded}), wantErr: ErrUnexpectedReply}},
		{step: "a", outcome: StepCompensated, transitionCase: transitionCase{name: "reply after abort", from: st(StatusAborted, "a", steps{"a": StepCompensated, "b": StepFailed}), wantErr: ErrUnexpectedReply}},
		{step: "c", outcome: StepSucceeded, transitionCase: transitionCase{name: "reply after abort for a step never started", from: st(StatusAborted, "a", steps{"a": StepCompensated, "b": StepFailed}), wantErr: ErrUnexpectedReply}},
		{step: "a", outcome: StepStarted, transitionCase: transitionCase{name: "started is not an outcome", from: st(StatusStarted, "a", steps{"a": StepStarted}), wantErr: ErrUnexpectedReply}},
		{step: "a", outcome: StepAbandoned, transitionCase: transitionCase{name: "abandoned is not an outcome", from: st(StatusStarted, "a", steps{"a": StepStarted}), wantErr: ErrUnexpectedReply}},
		// An early one answers a message the state does not show as sent
		// (the transition that sent it committed but is not visible yet):
		// ErrEarlyReply, retried until the state catches up.
		{step: "b", outcome: StepSucceeded, transitionCase: transitionCase{name: "reply for a step not started", from: st(StatusStarted, "a", steps{"a": StepStarted}), wantErr: ErrEarlyReply}},
		{step: "b", outcome: StepFailed, transitionCase: transitionCase{name: "failure of the next step before the previous one's success is seen", from: st(StatusStarted, "a", steps{"a": StepStarted}), wantErr: ErrEarlyReply}},
		{step: "a", outcome: StepSucceeded, transitionCase: transitionCase{name: "reply before the saga's first state is seen", from: st(StatusStarted, "", steps{}), wantErr: ErrEarlyReply}},
		{step: "a", outcome: StepCompensated, transitionCase: transitionCase{name: "compensated while running", from: st(StatusStarted, "a", steps{"a": StepStarted}), wantErr: ErrEarlyReply}},
		{step: "a", outcome: StepCompensated, transitionCase: transitionCase{name: "compensated before the failure that starts compensating is seen", from: st(StatusStarted, "b", steps{"a": StepSucceeded, "b": StepStarted}), wantErr: ErrEarlyReply}},
		{step: "a", outcome: StepCompensated, transitionCase: transitionCase{name: "compensated before its turn is seen", from: st(StatusAborting, "c", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepCompensating, "d": StepFailed}), wantErr: ErrEarlyReply}},
		{step: "d", outcome: StepCompensated, transitionCase: transitionCase{name: "compensated reply of an abandoned step not yet cancelled", from: st(StatusAborting, "c", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepCompensating, "d": StepAbandoned}), wantErr: ErrEarlyReply}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.check(t, func(s State) (State, []Action, error) { return Transition(def, s, tc.step, tc.outcome, now) })
		})
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	due := now.Add(-time.Millisecond)
	tests := []transitionCase{
		{
			name: "request with retries left: sent again, waiting twice as long",
			from: waiting(st(StatusStarted, "a", steps{"a": StepStarted}), 0, due),
			want: waiting(st(StatusStarted, "a", steps{"a": StepStarted}), 1, now.Add(20*time.Second)),
			acts: []Action{{Step: "a"}},
		},
		{
			name: "deadline exactly now counts as passed",
			from: waiting(st(StatusStarted, "a", steps{"a": StepStarted}), 1, now),
			want: waiting(st(StatusStarted, "a", steps{"a": StepStarted}), 2, now.Add(25*time.Second)),
			acts: []Action{{Step: "a"}},
		},
		{
			name: "last retry timed out: first step abandoned and cancelled itself",
			from: waiting(st(StatusStarted, "a", steps{"a": StepStarted}), 2, due),
			want: waiting(since(st(StatusAborting, "a", steps{"a": StepCompensating}), now), 0, now.Add(10*time.Second)),
			acts: []Action{{Step: "a", Compensate: true}},
		},
		{
			name: "step without retries abandoned at its first deadline: the succeeded step compensated first",
			from: waiting(st(StatusStarted, "c", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepStarted}), 0, due),
			want: waiting(since(st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepCompensated, "c": StepAbandoned}), now), 0, now.Add(10*time.Second)),
			acts: []Action{{Step: "a", Compensate: true}},
		},
		{
			name: "last step abandoned: newest succeeded step compensated first, abandoned one stays for last",
			from: waiting(st(StatusStarted, "d", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepSucceeded, "d": StepStarted}), 1, due),
			want: waiting(since(st(StatusAborting, "c", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepCompensating, "d": StepAbandoned}), now), 0, now.Add(5*time.Second)),
			acts: []Action{{Step: "c", Compensate: true}},
		},
		{
			name: "compensation timed out: sent again",
			from: waiting(st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepFailed}), 0, due),
			want: waiting(st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepFailed}), 1, now.Add(20*time.Second)),
			acts: []Action{{Step: "a", Compensate: true}},
		},
		{
			name: "compensation sent again forever, past the request's retries, at the capped wait",
			from: waiting(st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepFailed}), 57, due),
			want: waiting(st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepFailed}), 58, now.Add(25*time.Second)),
			acts: []Action{{Step: "a", Compensate: true}},
		},
		{
			name: "deadline on a saga whose step waits for nothing: dropped",
			from: waiting(st(StatusStarted, "a", steps{"a": StepSucceeded}), 0, due),
			want: st(StatusStarted, "a", steps{"a": StepSucceeded}),
		},
		{
			name: "deadline on an unknown current step: dropped",
			from: waiting(st(StatusStarted, "x", steps{"x": StepStarted}), 0, due),
			want: st(StatusStarted, "x", steps{"x": StepStarted}),
		},
		{name: "deadline in the future", from: waiting(st(StatusStarted, "a", steps{"a": StepStarted}), 0, now.Add(time.Millisecond)), wantErr: ErrNotDue},
		{name: "no deadline", from: st(StatusStarted, "b", steps{"a": StepSucceeded, "b": StepStarted}), wantErr: ErrNotDue},
		{name: "succeeded saga", from: waiting(st(StatusSucceeded, "a", steps{"a": StepSucceeded}), 0, due), wantErr: ErrNotDue},
		{name: "aborted saga", from: waiting(st(StatusAborted, "a", steps{"a": StepCompensated}), 0, due), wantErr: ErrNotDue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.check(t, func(s State) (State, []Action, error) { return Timeout(def, s, now) })
		})
	}
}

func TestOperatorActions(t *testing.T) {
	t.Parallel()
	dl := now.Add(time.Minute)
	running := waiting(st(StatusStarted, "c", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepStarted}), 0, dl)
	compensating := waiting(st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepCompensated, "c": StepFailed}), 3, dl)
	succeeded := st(StatusSucceeded, "d", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepSucceeded, "d": StepSucceeded})
	aborted := st(StatusAborted, "a", steps{"a": StepCompensated, "b": StepCompensated, "c": StepFailed})
	type opCase struct {
		transitionCase
		op func(State) (State, []Action, error)
	}
	abort := func(s State) (State, []Action, error) { return Abort(def, s, now) }
	retry := func(s State) (State, []Action, error) { return Retry(def, s, "", now) }
	mark := func(step string) func(State) (State, []Action, error) {
		return func(s State) (State, []Action, error) { return MarkCompensated(def, s, step, now) }
	}
	tests := []opCase{
		{op: abort, transitionCase: transitionCase{
			name: "abort a running saga: the waiting step abandoned, succeeded ones compensated first",
			from: running,
			want: waiting(since(st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepCompensated, "c": StepAbandoned}), now), 0, now.Add(10*time.Second)),
			acts: []Action{{Step: "a", Compensate: true}},
		}},
		{op: abort, transitionCase: transitionCase{
			name: "abort at the first step: it is cancelled",
			from: waiting(st(StatusStarted, "a", steps{"a": StepStarted}), 1, dl),
			want: waiting(since(st(StatusAborting, "a", steps{"a": StepCompensating}), now), 0, now.Add(10*time.Second)),
			acts: []Action{{Step: "a", Compensate: true}},
		}},
		{op: abort, transitionCase: transitionCase{
			name: "abort at a step without compensation and nothing before it to undo: aborted at once",
			from: st(StatusStarted, "b", steps{"a": StepFailed, "b": StepStarted}),
			want: since(st(StatusAborted, "b", steps{"a": StepFailed, "b": StepCompensated}), now),
		}},
		{op: abort, transitionCase: transitionCase{name: "abort an aborting saga", from: compensating, wantErr: ErrWrongState}},
		{op: abort, transitionCase: transitionCase{name: "abort a succeeded saga", from: succeeded, wantErr: ErrWrongState}},
		{op: abort, transitionCase: transitionCase{name: "abort an aborted saga", from: aborted, wantErr: ErrWrongState}},

		{op: retry, transitionCase: transitionCase{
			name: "retry a waiting request: sent again now, one more attempt",
			from: running,
			want: waiting(running, 1, now.Add(5*time.Second)),
			acts: []Action{{Step: "c"}},
		}},
		{op: retry, transitionCase: transitionCase{
			name: "retry a request past its retries: sent, the next deadline abandons it",
			from: waiting(st(StatusStarted, "a", steps{"a": StepStarted}), 2, dl),
			want: waiting(st(StatusStarted, "a", steps{"a": StepStarted}), 3, now.Add(25*time.Second)),
			acts: []Action{{Step: "a"}},
		}},
		{op: retry, transitionCase: transitionCase{
			name: "retry a waiting compensation",
			from: compensating,
			want: waiting(compensating, 4, now.Add(25*time.Second)),
			acts: []Action{{Step: "a", Compensate: true}},
		}},
		{op: retry, transitionCase: transitionCase{
			name: "retry a step without deadline: sent, still no deadline",
			from: st(StatusStarted, "b", steps{"a": StepSucceeded, "b": StepStarted}),
			want: waiting(st(StatusStarted, "b", steps{"a": StepSucceeded, "b": StepStarted}), 1, time.Time{}),
			acts: []Action{{Step: "b"}},
		}},
		{op: retry, transitionCase: transitionCase{name: "retry a succeeded saga", from: succeeded, wantErr: ErrWrongState}},
		{op: retry, transitionCase: transitionCase{name: "retry an aborted saga", from: aborted, wantErr: ErrWrongState}},

		{op: mark("a"), transitionCase: transitionCase{
			name: "mark the waiting compensation done: oldest step, aborted",
			from: compensating,
			want: since(st(StatusAborted, "a", steps{"a": StepCompensated, "b": StepCompensated, "c": StepFailed}), now),
		}},
		{op: mark("d"), transitionCase: transitionCase{
			name: "mark the abandoned step's cancel done: aborted",
			from: waiting(st(StatusAborting, "d", steps{"a": StepCompensated, "b": StepCompensated, "c": StepCompensated, "d": StepCompensating}), 9, dl),
			want: since(st(StatusAborted, "d", steps{"a": StepCompensated, "b": StepCompensated, "c": StepCompensated, "d": StepCompensated}), now),
		}},
		{op: mark("c"), transitionCase: transitionCase{
			name: "mark a newer compensation done: the next older one starts",
			from: waiting(st(StatusAborting, "c", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepCompensating, "d": StepFailed}), 2, dl),
			want: waiting(st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepCompensated, "c": StepCompensated, "d": StepFailed}), 0, now.Add(10*time.Second)),
			acts: []Action{{Step: "a", Compensate: true}},
		}},
		{op: mark("c"), transitionCase: transitionCase{name: "mark a failed step", from: compensating, wantErr: ErrWrongState}},
		{op: mark("b"), transitionCase: transitionCase{name: "mark a step already compensated", from: compensating, wantErr: ErrWrongState}},
		{op: mark("x"), transitionCase: transitionCase{name: "mark an unknown step", from: compensating, wantErr: ErrWrongState}},
		{op: mark("c"), transitionCase: transitionCase{name: "mark in a running saga", from: running, wantErr: ErrWrongState}},
		{op: mark("a"), transitionCase: transitionCase{name: "mark in an aborted saga", from: aborted, wantErr: ErrWrongState}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.check(t, tc.op)
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := testStep("a", true, Deadline{})
	for name, d := range map[string]Definition{
		"no type":          {Steps: []Step{ok}},
		"no steps":         {Type: "x"},
		"unnamed step":     {Type: "x", Steps: []Step{testStep("", true, Deadline{})}},
		"duplicate step":   {Type: "x", Steps: []Step{ok, ok}},
		"no request":       {Type: "x", Steps: []Step{{Name: "a", Outcome: ok.Outcome}}},
		"negative timeout": {Type: "x", Steps: []Step{testStep("a", true, Deadline{Timeout: -time.Second})}},
		"negative retries": {Type: "x", Steps: []Step{testStep("a", true, Deadline{Timeout: time.Second, Retries: -1})}},
		"negative max":     {Type: "x", Steps: []Step{testStep("a", true, Deadline{Timeout: time.Second, MaxTimeout: -1})}},
	} {
		if err := d.Validate(); err == nil {
			t.Errorf("%s: Validate() = nil, want an error", name)
		}
	}
	if err := def.Validate(); err != nil {
		t.Errorf("valid definition: %v", err)
	}
}
