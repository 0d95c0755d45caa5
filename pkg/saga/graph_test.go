package saga_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/pkg/saga/sagatest"
)

// graphStep is a compensable step waiting for after (nil: the step before).
func graphStep(name string, after []string, retries int) saga.Step {
	msg := func(typ string) func(json.RawMessage) (saga.Message, error) {
		return func(p json.RawMessage) (saga.Message, error) { return saga.Message{Type: typ, Payload: p}, nil }
	}
	return saga.Step{
		Name: name, After: after, Request: msg("REQUEST"), Compensate: msg("CANCEL"),
		Outcome:  func(r json.RawMessage) (saga.StepStatus, error) { return saga.StepStatus(r), nil },
		Deadline: saga.Deadline{Timeout: 10 * time.Second, Retries: retries},
	}
}

// diamond: a, then b and c side by side, then d once both succeeded; c
// is sent again once on its deadline, the others are given up on.
func diamond(retriesOfC int) saga.Definition {
	return saga.Definition{Type: "diamond", Steps: []saga.Step{
		graphStep("a", nil, 0),
		graphStep("b", []string{"a"}, 0),
		graphStep("c", []string{"a"}, retriesOfC),
		graphStep("d", []string{"b", "c"}, 0),
	}}
}

// Every path of graphs — replies of parallel steps in every order,
// deadlines, operators — keeps the engine's invariants, which for graphs
// say: a step starts as soon as its dependencies succeeded and never
// before, parallel steps wait each with its own deadline, compensation
// runs in the reverse order of the dependencies, abandoned steps last.
func TestGraphsKeepTheInvariantsOnEveryPath(t *testing.T) {
	t.Parallel()
	for _, d := range []saga.Definition{
		diamond(0),
		{Type: "two-roots", Steps: []saga.Step{graphStep("x", []string{}, 1), graphStep("y", []string{}, 0)}},
		{Type: "fork", Steps: []saga.Step{graphStep("a", nil, 0), graphStep("b", []string{"a"}, 0), graphStep("c", []string{"a"}, 0)}},
	} {
		t.Run(d.Type, func(t *testing.T) {
			t.Parallel()
			r := sagatest.Walk(t, d)
			t.Logf("paths %v, longest %d events", r.Paths, len(r.Longest))
		})
	}
}

func TestParallelStepsStartTogetherAndCompensateInReverseDependencyOrder(t *testing.T) {
	t.Parallel()
	k := sagatest.New(t, diamond(1), struct{}{})
	k.ExpectSent(sagatest.Request("a"))
	k.Reply("a", saga.StepSucceeded).ExpectSent(sagatest.Request("b"), sagatest.Request("c")).
		ExpectWait("b", 0, 10*time.Second).ExpectWait("c", 0, 10*time.Second)
	k.Advance(5*time.Second).Reply("b", saga.StepSucceeded).ExpectSent().ExpectStep("d", "")
	// c's deadline passes: sent again, b's wait is not c's.
	k.Advance(5*time.Second).ExpectSent(sagatest.Request("c")).ExpectWait("c", 1, 10*time.Second)
	// c fails: b (which depends on a) is undone first, then a.
	k.Reply("c", saga.StepFailed).ExpectStatus(saga.StatusAborting).ExpectSent(sagatest.Compensation("b"))
	k.Reply("a", saga.StepCompensated).ExpectRefused(saga.ErrEarlyReply)
	k.Reply("b", saga.StepCompensated).ExpectSent(sagatest.Compensation("a"))
	k.Reply("a", saga.StepCompensated).ExpectSent().ExpectStatus(saga.StatusAborted).
		ExpectStep("c", saga.StepFailed).ExpectStep("d", "")
}

func TestAllParallelStepsSucceed(t *testing.T) {
	t.Parallel()
	k := sagatest.New(t, diamond(1), struct{}{})
	k.Reply("a", saga.StepSucceeded)
	k.Reply("c", saga.StepSucceeded).ExpectSent()
	k.Reply("b", saga.StepSucceeded).ExpectSent(sagatest.Request("d")).ExpectStatus(saga.StatusStarted)
	k.Reply("d", saga.StepSucceeded).ExpectSent().ExpectStatus(saga.StatusSucceeded)
}

// A failure abandons the steps still waiting in other branches: they may
// take effect yet, so they are cancelled too — after the steps that
// succeeded, all at once.
func TestFailureAbandonsTheOtherBranches(t *testing.T) {
	t.Parallel()
	d := saga.Definition{Type: "two-roots", Steps: []saga.Step{
		graphStep("x", []string{}, 0), graphStep("y", []string{}, 0), graphStep("z", []string{}, 0)}}
	k := sagatest.New(t, d, struct{}{})
	k.ExpectSent(sagatest.Request("x"), sagatest.Request("y"), sagatest.Request("z"))
	k.Reply("z", saga.StepSucceeded)
	k.Reply("x", saga.StepFailed).ExpectStep("y", saga.StepAbandoned).ExpectSent(sagatest.Compensation("z"))
	k.Reply("z", saga.StepCompensated).ExpectSent(sagatest.Compensation("y"))
	k.Reply("y", saga.StepSucceeded).ExpectRefused(saga.ErrUnexpectedReply) // the request's late answer
	k.Reply("y", saga.StepCompensated).ExpectStatus(saga.StatusAborted)
}

// The operator retries one waiting step, or every one.
func TestRetryOneOrEveryWaitingStep(t *testing.T) {
	t.Parallel()
	k := sagatest.New(t, diamond(1), struct{}{})
	k.RetryStep("b").ExpectRefused(saga.ErrWrongState) // not started
	k.Reply("a", saga.StepSucceeded)
	k.Advance(time.Second).RetryStep("b").ExpectSent(sagatest.Request("b")).ExpectWait("b", 1, 10*time.Second).
		ExpectWait("c", 0, 9*time.Second)
	k.Retry().ExpectSent(sagatest.Request("b"), sagatest.Request("c"))
}

// A forward-only saga is never given up on: its requests are sent again
// past their retries, and the operator cannot abort it.
func TestForwardOnlySagaGoesThrough(t *testing.T) {
	t.Parallel()
	d := saga.Definition{Type: "give-back", ForwardOnly: true, Steps: []saga.Step{
		graphStep("refund", []string{}, 0), graphStep("release", []string{}, 0)}}
	k := sagatest.New(t, d, struct{}{})
	k.Abort().ExpectRefused(saga.ErrWrongState)
	k.Advance(10*time.Second).ExpectSent(sagatest.Request("refund"), sagatest.Request("release")).ExpectStatus(saga.StatusStarted)
	k.Advance(10*time.Second).ExpectSent(sagatest.Request("refund"), sagatest.Request("release")).ExpectAttempt(2)
	k.Reply("refund", saga.StepSucceeded).Reply("release", saga.StepSucceeded).ExpectStatus(saga.StatusSucceeded)
	sagatest.Walk(t, d, sagatest.Reachable(saga.StatusSucceeded, saga.StatusAborted))
}

func TestValidateDependencies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		after []string
		want  string
	}{
		{[]string{"nope"}, `comes after "nope", which is not a step before it`},
		{[]string{"late"}, `comes after "late", which is not a step before it`},
		{[]string{"a", "a"}, "comes after a twice"},
	} {
		d := saga.Definition{Type: "bad", Steps: []saga.Step{graphStep("a", nil, 0), graphStep("b", tc.after, 0), graphStep("late", nil, 0)}}
		if err := d.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("after %v: %v, want %q", tc.after, err, tc.want)
		}
	}
	if err := (saga.Definition{Type: "neg", Version: -1, Steps: []saga.Step{graphStep("a", nil, 0)}}).Validate(); err == nil {
		t.Error("negative version accepted")
	}
}

// Orchestrators hold versions: new sagas start with the highest, and a
// type and version may be given once.
func TestOrchestratorVersions(t *testing.T) {
	t.Parallel()
	v1 := saga.Definition{Type: "t", Steps: []saga.Step{graphStep("a", nil, 0)}}
	v2 := saga.Definition{Type: "t", Version: 2, Steps: []saga.Step{graphStep("a", nil, 0), graphStep("b", nil, 0)}}
	o, err := saga.New(saga.Config{Definitions: []saga.Definition{v2, v1}})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := o.Definition("t"); d.V() != 2 {
		t.Errorf("new sagas start with version %d, want 2", d.V())
	}
	if got := o.Versions("t"); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("versions %v", got)
	}
	if !o.Known(saga.State{Type: "t", DefinitionVersion: 1}) || o.Known(saga.State{Type: "t", DefinitionVersion: 3}) {
		t.Error("Known is wrong")
	}
	if got := o.ReplyTopics(); len(got) != 2 {
		t.Errorf("reply topics %v, want those of every version", got)
	}
	if _, err := saga.New(saga.Config{Definitions: []saga.Definition{v1, v1}}); err == nil || !errors.Is(err, err) || !strings.Contains(err.Error(), "version 1 defined twice") {
		t.Errorf("a version given twice: %v", err)
	}
}
