package sagatest_test

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/pkg/saga/sagatest"
)

// fakeT records what sagatest reports instead of failing the test: Errorf
// records, Fatalf records and ends the goroutine as testing's does.
// Everything else goes to the real test.
type fakeT struct {
	testing.TB
	failures []string
	cleanups []func()
}

func (f *fakeT) Helper()           {}
func (f *fakeT) Failed() bool      { return len(f.failures) > 0 }
func (f *fakeT) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeT) Errorf(format string, args ...any) {
	f.failures = append(f.failures, fmt.Sprintf(format, args...))
}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	runtime.Goexit()
}

// run runs test with a fakeT on its own goroutine, then its cleanups, and
// returns what it reported.
func run(t *testing.T, test func(t testing.TB)) []string {
	f := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			for i := len(f.cleanups) - 1; i >= 0; i-- {
				f.cleanups[i]()
			}
		}()
		test(f)
	}()
	<-done
	return f.failures
}

// expectFailures checks that got has one failure per want, each
// containing every fragment of its want.
func expectFailures(t *testing.T, got []string, want ...[]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d failures %q, want %d", len(got), got, len(want))
	}
	for i, frags := range want {
		for _, frag := range frags {
			if !strings.Contains(got[i], frag) {
				t.Errorf("failure %q does not say %q", got[i], frag)
			}
		}
	}
}

func TestKitReportsWhatItExpectedAndTheState(t *testing.T) {
	t.Parallel()
	got := run(t, func(t testing.TB) {
		k := sagatest.New(t, tripDefinition(), aTrip)
		k.Reply("hotel", saga.StepSucceeded).
			ExpectSent(sagatest.Compensation("hotel")).
			ExpectStatus(saga.StatusAborted).
			ExpectStep("card", saga.StepSucceeded).
			ExpectStep("nope", saga.StepSucceeded).
			ExpectAttempt(2).
			ExpectDeadline(time.Minute).
			ExpectCompensated("hotel").
			ExpectRefused(saga.ErrWrongState)
		k.Advance(time.Hour).ExpectDeadline(0)
	})
	state := "STARTED saga trip at card (attempt 0, deadline in 30s); steps hotel=SUCCEEDED card=STARTED email=(not started)"
	after := `after Reply("hotel", SUCCEEDED)`
	expectFailures(t, got,
		[]string{after, "sent [request of card], want [compensation of hotel]", state},
		[]string{after, "saga status STARTED, want ABORTED", state},
		[]string{after, "step card STARTED, want SUCCEEDED", state},
		[]string{after, "saga trip has no step nope"},
		[]string{after, "attempt 0, want 2"},
		[]string{after, "deadline in 30s, want in 1m0s"},
		[]string{after, "step hotel SUCCEEDED, want COMPENSATED"},
		[]string{after, "it was accepted, want it refused with action does not apply"},
		// The card's deadline abandons it, then the hotel's release is
		// sent again and again within the hour.
		[]string{"after Advance(1h0m0s)", "deadline in", "want in 0s", "ABORTING saga trip at hotel"},
	)
}

func TestKitRefusalsMustBeExpected(t *testing.T) {
	t.Parallel()
	// The next expectation after an unexpected refusal stops the test.
	got := run(t, func(t testing.TB) {
		k := sagatest.New(t, tripDefinition(), aTrip)
		k.Reply("card", saga.StepSucceeded).ExpectStatus(saga.StatusStarted)
		t.Errorf("not reached")
	})
	expectFailures(t, got, []string{`Reply("card", SUCCEEDED) was refused`, "reply ahead of the saga state", "ExpectRefused"})

	// So does the next event.
	got = run(t, func(t testing.TB) {
		k := sagatest.New(t, tripDefinition(), aTrip)
		k.Abort().Abort().Retry()
		t.Errorf("not reached")
	})
	expectFailures(t, got, []string{"Abort() was refused", "action does not apply"})

	// A refusal at the end of the test fails it too.
	got = run(t, func(t testing.TB) {
		sagatest.New(t, tripDefinition(), aTrip).MarkCompensated("hotel")
	})
	expectFailures(t, got, []string{`MarkCompensated("hotel") was refused`, "no ExpectRefused"})

	// A refusal with another error.
	got = run(t, func(t testing.TB) {
		sagatest.New(t, tripDefinition(), aTrip).Reply("hotel", saga.StepCompensated).ExpectRefused(saga.ErrUnexpectedReply)
	})
	expectFailures(t, got, []string{"refused with reply ahead of the saga state", "want unexpected reply"})

	// A bad reply body, and a reply of no step.
	got = run(t, func(t testing.TB) {
		k := sagatest.New(t, tripDefinition(), aTrip)
		k.ReplyBody("hotel", []byte(`{"status":"MAYBE"}`)).ExpectRefused(saga.ErrBadReply).ExpectStatus(saga.StatusStarted)
		k.ReplyBody("pool", hotel.Info().EncodeReply(hotel.Succeeded)).ExpectRefused(saga.ErrUnexpectedReply)
		k.Advance(-time.Second)
	})
	expectFailures(t, got, []string{"Advance(-1s): the clock cannot go back"})
}

func TestNewRefusesWhatCannotStart(t *testing.T) {
	t.Parallel()
	noRequest := saga.Definition{Type: "x", Steps: []saga.Step{{Name: "a"}}}
	expectFailures(t, run(t, func(t testing.TB) { sagatest.New(t, noRequest, nil) }),
		[]string{"step a needs Request and Outcome"})
	expectFailures(t, run(t, func(t testing.TB) { sagatest.New(t, tripDefinition(), func() {}) }),
		[]string{"encode the payload"})
	cardFirst := saga.Definition{Type: "y", Steps: tripDefinition().Steps[1:]}
	expectFailures(t, run(t, func(t testing.TB) { sagatest.New(t, cardFirst, trip{ID: 1}) }),
		[]string{"start saga y", "build the request of card", errNoCard.Error()})
}

func TestWalkReportsWhatItCannotReachOrBuild(t *testing.T) {
	t.Parallel()
	var r sagatest.Result
	got := run(t, func(t testing.TB) { r = sagatest.Walk(t, tripDefinition(), sagatest.MaxDepth(2)) })
	expectFailures(t, got, []string{"walk saga trip: no path ends SUCCEEDED"})
	if r.Cut == 0 || r.Paths[saga.StatusAborted] == 0 || len(r.Longest) != 2 {
		t.Errorf("cut walk: %+v", r)
	}
	// Only the hotel failing ends a path within two events.
	got = run(t, func(t testing.TB) {
		r = sagatest.Walk(t, tripDefinition(), sagatest.MaxDepth(1), sagatest.Reachable(saga.StatusAborted))
	})
	expectFailures(t, got)
	if r.Paths[saga.StatusAborted] != 1 || r.Paths[saga.StatusSucceeded] != 0 || r.Cut == 0 {
		t.Errorf("walk of one event: %+v", r)
	}

	got = run(t, func(t testing.TB) { sagatest.Walk(t, tripDefinition(), sagatest.Payload(trip{ID: 1})) })
	expectFailures(t, got, []string{"walk saga trip: [", "reply SUCCEEDED@hotel]", "build the request of card", errNoCard.Error()})

	got = run(t, func(t testing.TB) { sagatest.Walk(t, saga.Definition{Type: "empty"}) })
	expectFailures(t, got, []string{"no steps"})
}

// Path catches each invariant a state can break. The states are made by
// hand: the engine makes none of them.
func TestPathReportsBrokenInvariants(t *testing.T) {
	t.Parallel()
	d := tripDefinition()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Second)
	type steps = map[string]saga.StepStatus
	state := func(status saga.Status, current string, s steps, deadline time.Time) saga.State {
		return saga.State{Status: status, CurrentStep: current, StepStatus: s, Deadline: deadline, StatusSince: t0}
	}
	since := func(s saga.State, at time.Time) saga.State { s.StatusSince = at; return s }
	// waits makes steps wait until s's deadline, its current step first.
	waits := func(s saga.State, steps ...string) saga.State {
		s.Waits = map[string]saga.Wait{}
		for _, st := range steps {
			s.Waits[st] = saga.Wait{Deadline: s.Deadline}
		}
		return s
	}
	req := func(step string) []saga.Action { return []saga.Action{{Step: step}} }
	comp := func(step string) []saga.Action { return []saga.Action{{Step: step, Compensate: true}} }

	start, acts := saga.Begin(d, uuid.Nil, json.RawMessage(`{}`), t0)
	root, err := sagatest.NewPath(d, start, acts, t0)
	if err != nil {
		t.Fatal(err)
	}
	// The hotel booked, the card being charged: the start of most cases.
	charging := state(saga.StatusStarted, "card", steps{"hotel": saga.StepSucceeded, "card": saga.StepStarted}, t1.Add(30*time.Second))
	p, err := root.Next(charging, req("card"), t1)
	if err != nil {
		t.Fatal(err)
	}
	if p.Len() != 1 || p.State().CurrentStep != "card" || len(p.Sent()) != 1 {
		t.Errorf("path %d events at %+v, sent %v", p.Len(), p.State(), p.Sent())
	}
	// The operator aborted while the card was charged.
	abandoning := mustNext(t, p, since(state(saga.StatusAborting, "hotel", steps{"hotel": saga.StepCompensating, "card": saga.StepAbandoned}, t1.Add(time.Minute)), t1), comp("hotel"), t1)
	aborted := since(state(saga.StatusAborted, "hotel", steps{"hotel": saga.StepCompensated, "card": saga.StepFailed}, time.Time{}), t1)

	tests := []struct {
		name string
		from sagatest.Path
		next saga.State
		acts []saga.Action
		want string
	}{
		{"an ended saga sends", root, since(state(saga.StatusAborted, "hotel", steps{"hotel": saga.StepFailed}, time.Time{}), t1), req("hotel"),
			"ended saga still sends [request of hotel]"},
		{"an ended saga waits", root, since(state(saga.StatusAborted, "hotel", steps{"hotel": saga.StepFailed}, t1), t1), nil,
			"ended saga still sends nothing, waits map[], attempt 0, deadline"},
		{"succeeded with a step not succeeded", p, since(state(saga.StatusSucceeded, "email", steps{"hotel": saga.StepSucceeded, "card": saga.StepSucceeded}, time.Time{}), t1), nil,
			"SUCCEEDED saga has step email (not started)"},
		{"aborted with a step succeeded", p, since(state(saga.StatusAborted, "card", steps{"hotel": saga.StepSucceeded, "card": saga.StepFailed}, time.Time{}), t1), nil,
			"ABORTED saga has step hotel SUCCEEDED"},
		{"aborted with an abandoned step not compensated", abandoning, since(state(saga.StatusAborted, "hotel", steps{"hotel": saga.StepCompensated, "card": saga.StepFailed}, time.Time{}), t1), nil,
			"ABORTED saga has step card FAILED"},
		{"aborted with a failed step", p, since(state(saga.StatusAborted, "hotel", steps{"hotel": saga.StepCompensated, "card": saga.StepFailed}, time.Time{}), t1), nil,
			""}, // the same state, when the card FAILED instead of being abandoned
		{"running saga sends nothing", p, state(saga.StatusStarted, "card", steps{"hotel": saga.StepSucceeded, "card": saga.StepStarted}, t1.Add(30*time.Second)), nil,
			"an event changed nothing and sent nothing"},
		{"sends for a step it is not at", p, state(saga.StatusStarted, "card", steps{"hotel": saga.StepSucceeded, "card": saga.StepStarted}, t1.Add(30*time.Second)), req("hotel"),
			"sends the request of hotel but the saga is STARTED saga trip at card"},
		{"wrong deadline", p, state(saga.StatusStarted, "card", steps{"hotel": saga.StepSucceeded, "card": saga.StepStarted}, t1.Add(time.Minute)), req("card"),
			"for attempt 0 sent at"},
		{"abandoned compensated before succeeded", p, since(state(saga.StatusAborting, "card", steps{"hotel": saga.StepSucceeded, "card": saga.StepCompensating}, t1.Add(30*time.Second)), t1), comp("card"),
			"abandoned step card compensated while step hotel is SUCCEEDED"},
		{"status since not moved", p, state(saga.StatusAborting, "hotel", steps{"hotel": saga.StepCompensating, "card": saga.StepFailed}, t1.Add(time.Minute)), comp("hotel"),
			"status STARTED → ABORTING"},
		{"status since moved without a status change", p, since(charging, t1), req("card"),
			"status STARTED → STARTED"},
		{"a step left behind", p, waits(state(saga.StatusStarted, "email", steps{"hotel": saga.StepSucceeded, "email": saga.StepStarted}, t1.Add(time.Minute)), "email"), req("email"),
			"step card is (not started) but its dependencies [hotel] are [hotel=SUCCEEDED]"},
		{"a step started too soon", p, waits(state(saga.StatusStarted, "card", steps{"hotel": saga.StepSucceeded, "card": saga.StepStarted, "email": saga.StepStarted}, t1.Add(30*time.Second)), "card", "email"), req("email"),
			"step email is STARTED but its dependencies [card] are [card=STARTED]"},
		{"a wait changed without a message", p, state(saga.StatusStarted, "card", steps{"hotel": saga.StepSucceeded, "card": saga.StepStarted}, t1.Add(time.Minute)), nil,
			"step card waits (attempt 0, deadline"},
		{"an ended saga changed", mustNext(t, p, aborted, nil, t1), aborted, nil,
			"an event changed the ended saga"},
	}
	for _, tc := range tests {
		_, err := tc.from.Next(tc.next, tc.acts, t1)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	if p.Len() != 1 || p.State().CurrentStep != "card" {
		t.Errorf("Next modified its path: %+v", p.State())
	}
}

func mustNext(t *testing.T, p sagatest.Path, s saga.State, acts []saga.Action, at time.Time) sagatest.Path {
	t.Helper()
	n, err := p.Next(s, acts, at)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
