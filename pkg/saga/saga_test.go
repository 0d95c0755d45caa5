package saga

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

func testStep(name string, compensable bool) Step {
	s := Step{
		Name:    name,
		Request: func(p json.RawMessage) (Message, error) { return Message{Type: "REQUEST", Payload: p}, nil },
		Outcome: func(r json.RawMessage) (StepStatus, error) { return StepStatus(r), nil },
	}
	if compensable {
		s.Compensate = func(p json.RawMessage) (Message, error) { return Message{Type: "CANCEL", Payload: p}, nil }
	}
	return s
}

// three steps: a and b compensable, c not (so its compensation is skipped).
var def = Definition{Type: "test", Steps: []Step{testStep("a", true), testStep("b", false), testStep("c", true), testStep("d", true)}}

type steps = map[string]StepStatus

func st(status Status, current string, s steps) State {
	return State{Status: status, CurrentStep: current, StepStatus: s}
}

func TestBegin(t *testing.T) {
	t.Parallel()
	got, acts := Begin(def, uuid.Nil, json.RawMessage(`{}`))
	want := State{Type: "test", Payload: json.RawMessage(`{}`), Status: StatusStarted, CurrentStep: "a", StepStatus: steps{"a": StepStarted}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Action{{Step: "a"}}, acts); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
}

func TestTransition(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		from    State
		step    string
		outcome StepStatus
		want    State
		acts    []Action
		wantErr error
	}{
		{
			name: "first step succeeds: second starts",
			from: st(StatusStarted, "a", steps{"a": StepStarted}), step: "a", outcome: StepSucceeded,
			want: st(StatusStarted, "b", steps{"a": StepSucceeded, "b": StepStarted}),
			acts: []Action{{Step: "b"}},
		},
		{
			name: "last step succeeds: saga succeeds",
			from: st(StatusStarted, "d", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepSucceeded, "d": StepStarted}), step: "d", outcome: StepSucceeded,
			want: st(StatusSucceeded, "d", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepSucceeded, "d": StepSucceeded}),
		},
		{
			name: "first step fails: nothing to compensate, aborted",
			from: st(StatusStarted, "a", steps{"a": StepStarted}), step: "a", outcome: StepFailed,
			want: st(StatusAborted, "a", steps{"a": StepFailed}),
		},
		{
			name: "second step fails: first compensated",
			from: st(StatusStarted, "b", steps{"a": StepSucceeded, "b": StepStarted}), step: "b", outcome: StepFailed,
			want: st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepFailed}),
			acts: []Action{{Step: "a", Compensate: true}},
		},
		{
			name: "last step fails: newest compensable step first",
			from: st(StatusStarted, "d", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepSucceeded, "d": StepStarted}), step: "d", outcome: StepFailed,
			want: st(StatusAborting, "c", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepCompensating, "d": StepFailed}),
			acts: []Action{{Step: "c", Compensate: true}},
		},
		{
			name: "compensated: step without compensation skipped, next older compensated",
			from: st(StatusAborting, "c", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepCompensating, "d": StepFailed}), step: "c", outcome: StepCompensated,
			want: st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepCompensated, "c": StepCompensated, "d": StepFailed}),
			acts: []Action{{Step: "a", Compensate: true}},
		},
		{
			name: "oldest compensated: aborted",
			from: st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepFailed}), step: "a", outcome: StepCompensated,
			want: st(StatusAborted, "a", steps{"a": StepCompensated, "b": StepFailed}),
		},
		{
			name: "third step fails after a non-compensable step: it is marked, the first compensated",
			from: st(StatusStarted, "c", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepStarted}), step: "c", outcome: StepFailed,
			want: st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepCompensated, "c": StepFailed}),
			acts: []Action{{Step: "a", Compensate: true}},
		},
		// Replies that do not fit change nothing.
		{name: "duplicate success", from: st(StatusStarted, "b", steps{"a": StepSucceeded, "b": StepStarted}), step: "a", outcome: StepSucceeded, wantErr: ErrUnexpectedReply},
		{name: "reply for a step not started", from: st(StatusStarted, "a", steps{"a": StepStarted}), step: "b", outcome: StepSucceeded, wantErr: ErrUnexpectedReply},
		{name: "unknown step", from: st(StatusStarted, "a", steps{"a": StepStarted}), step: "x", outcome: StepSucceeded, wantErr: ErrUnexpectedReply},
		{name: "compensated while running", from: st(StatusStarted, "a", steps{"a": StepStarted}), step: "a", outcome: StepCompensated, wantErr: ErrUnexpectedReply},
		{name: "success while compensating", from: st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepFailed}), step: "a", outcome: StepSucceeded, wantErr: ErrUnexpectedReply},
		{name: "late reply of failed step", from: st(StatusAborting, "a", steps{"a": StepCompensating, "b": StepFailed}), step: "b", outcome: StepFailed, wantErr: ErrUnexpectedReply},
		{name: "reply after success", from: st(StatusSucceeded, "d", steps{"a": StepSucceeded, "b": StepSucceeded, "c": StepSucceeded, "d": StepSucceeded}), step: "d", outcome: StepSucceeded, wantErr: ErrUnexpectedReply},
		{name: "reply after abort", from: st(StatusAborted, "a", steps{"a": StepCompensated, "b": StepFailed}), step: "a", outcome: StepCompensated, wantErr: ErrUnexpectedReply},
		{name: "started is not an outcome", from: st(StatusStarted, "a", steps{"a": StepStarted}), step: "a", outcome: StepStarted, wantErr: ErrUnexpectedReply},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			before := tc.from.clone()
			got, acts, err := Transition(def, tc.from, tc.step, tc.outcome)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(before, tc.from); diff != "" {
				t.Errorf("input state modified (-before +after):\n%s", diff)
			}
			if tc.wantErr != nil {
				if diff := cmp.Diff(tc.from, got); diff != "" {
					t.Errorf("unexpected reply changed state (-want +got):\n%s", diff)
				}
				if len(acts) != 0 {
					t.Errorf("unexpected reply produced actions %v", acts)
				}
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.acts, acts); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
		})
	}
}

// Every path through a definition ends SUCCEEDED or ABORTED with each step in
// a final status, and every step that succeeded in an aborted saga is
// compensated: walk all reply sequences exhaustively.
func TestEveryPathTerminates(t *testing.T) {
	t.Parallel()
	var walk func(s State, acts []Action, depth int)
	paths := 0
	walk = func(s State, acts []Action, depth int) {
		if depth > 2*len(def.Steps)+1 {
			t.Fatalf("saga did not terminate: %+v", s)
		}
		if s.Status.Done() {
			paths++
			if len(acts) != 0 {
				t.Errorf("finished saga still sends %v", acts)
			}
			for name, ss := range s.StepStatus {
				switch {
				case s.Status == StatusSucceeded && ss != StepSucceeded,
					s.Status == StatusAborted && ss != StepFailed && ss != StepCompensated:
					t.Errorf("%s saga has step %s %s: %+v", s.Status, name, ss, s.StepStatus)
				}
			}
			return
		}
		if len(acts) != 1 {
			t.Fatalf("running saga must send exactly one message, sends %v in %+v", acts, s)
		}
		outcomes := []StepStatus{StepSucceeded, StepFailed}
		if acts[0].Compensate {
			outcomes = []StepStatus{StepCompensated}
		}
		for _, o := range outcomes {
			n, a, err := Transition(def, s, acts[0].Step, o)
			if err != nil {
				t.Fatalf("reply %s to %v: %v", o, acts[0], err)
			}
			walk(n, a, depth+1)
		}
	}
	s, acts := Begin(def, uuid.Nil, nil)
	walk(s, acts, 0)
	if want := len(def.Steps) + 1; paths != want {
		t.Errorf("explored %d terminal paths, want %d", paths, want)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for name, d := range map[string]Definition{
		"no type":        {Steps: []Step{testStep("a", true)}},
		"no steps":       {Type: "x"},
		"unnamed step":   {Type: "x", Steps: []Step{testStep("", true)}},
		"duplicate step": {Type: "x", Steps: []Step{testStep("a", true), testStep("a", true)}},
		"no request":     {Type: "x", Steps: []Step{{Name: "a", Outcome: testStep("a", true).Outcome}}},
	} {
		if err := d.Validate(); err == nil {
			t.Errorf("%s: Validate() = nil, want an error", name)
		}
	}
	if err := def.Validate(); err != nil {
		t.Errorf("valid definition: %v", err)
	}
}
