// Package saga is a small orchestration engine for sagas whose messages leave
// through the transactional outbox (pkg/outbox). A saga type is a Definition:
// ordered steps, each with the request that starts it, the message that
// compensates it and the mapping of its replies to a step outcome. The state
// of every saga instance is one row of the table "sagastate", changed only
// by the pure function Transition and persisted with an optimistic lock.
//
// The engine knows nothing about orders: the order service defines the
// order-placement saga as data and calls Start and Handle from its own
// transactions.
package saga

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Status is the state of a whole saga.
type Status string

// Saga statuses: STARTED → SUCCEEDED, or STARTED → ABORTING → ABORTED.
const (
	StatusStarted   Status = "STARTED"
	StatusSucceeded Status = "SUCCEEDED"
	StatusAborting  Status = "ABORTING"
	StatusAborted   Status = "ABORTED"
)

// Done reports whether no further transition is possible.
func (s Status) Done() bool { return s == StatusSucceeded || s == StatusAborted }

// StepStatus is the state of one step of a saga.
type StepStatus string

// Step statuses. A step is STARTED when its request is sent, then SUCCEEDED or
// FAILED by its reply; a SUCCEEDED step of an aborting saga becomes
// COMPENSATING when its compensation is sent, COMPENSATED when confirmed.
const (
	StepStarted      StepStatus = "STARTED"
	StepSucceeded    StepStatus = "SUCCEEDED"
	StepFailed       StepStatus = "FAILED"
	StepCompensating StepStatus = "COMPENSATING"
	StepCompensated  StepStatus = "COMPENSATED"
)

// Message is a request or compensation a step sends: it becomes one outbox
// event with aggregatetype = the step name, aggregateid = the saga id.
type Message struct {
	Type    string
	Payload json.RawMessage
}

// Step is one participant call of a saga.
type Step struct {
	// Name identifies the step in the saga state and routes its messages
	// (the outbox aggregatetype, hence the topic "<name>.request").
	Name string
	// Request builds the message that starts the step from the saga payload.
	Request func(payload json.RawMessage) (Message, error)
	// Compensate builds the message that undoes a SUCCEEDED step. Nil means
	// the step has nothing to undo: it is marked COMPENSATED without a message.
	Compensate func(payload json.RawMessage) (Message, error)
	// Outcome maps a reply of the participant to SUCCEEDED, FAILED or
	// COMPENSATED. An error means the reply cannot be understood.
	Outcome func(reply json.RawMessage) (StepStatus, error)
}

// Definition is a saga type: its name and its steps in execution order.
// Compensation runs in the reverse order.
type Definition struct {
	Type  string
	Steps []Step
}

// Validate reports a definition that cannot run.
func (d Definition) Validate() error {
	if d.Type == "" {
		return errors.New("saga definition: empty type")
	}
	if len(d.Steps) == 0 {
		return fmt.Errorf("saga definition %s: no steps", d.Type)
	}
	seen := map[string]bool{}
	for i, s := range d.Steps {
		switch {
		case s.Name == "":
			return fmt.Errorf("saga definition %s: step %d has no name", d.Type, i)
		case seen[s.Name]:
			return fmt.Errorf("saga definition %s: duplicate step %s", d.Type, s.Name)
		case s.Request == nil || s.Outcome == nil:
			return fmt.Errorf("saga definition %s: step %s needs Request and Outcome", d.Type, s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

func (d Definition) step(name string) (int, bool) {
	for i, s := range d.Steps {
		if s.Name == name {
			return i, true
		}
	}
	return -1, false
}

// State is one saga instance, as stored in the sagastate table.
type State struct {
	ID          uuid.UUID             `json:"id"`
	Type        string                `json:"type"`
	Payload     json.RawMessage       `json:"payload"`
	CurrentStep string                `json:"currentStep"`
	StepStatus  map[string]StepStatus `json:"stepStatus"`
	Status      Status                `json:"status"`
	Version     int                   `json:"version"`
	CreatedAt   time.Time             `json:"createdAt"`
	UpdatedAt   time.Time             `json:"updatedAt"`
}

func (s State) clone() State {
	c := s
	c.StepStatus = make(map[string]StepStatus, len(s.StepStatus))
	for k, v := range s.StepStatus {
		c.StepStatus[k] = v
	}
	return c
}

// Action is a message the saga must send after a transition: the request or
// the compensation of Step.
type Action struct {
	Step       string
	Compensate bool
}

// ErrUnexpectedReply reports a reply that does not fit the saga's state: for
// a step that is not waiting for one, or after the saga finished. It is what
// a redelivered or late reply looks like; callers log it and change nothing.
var ErrUnexpectedReply = errors.New("unexpected reply")

// Begin returns the first state of a saga and the action that starts it.
func Begin(d Definition, id uuid.UUID, payload json.RawMessage) (State, []Action) {
	first := d.Steps[0].Name
	return State{
		ID:          id,
		Type:        d.Type,
		Payload:     payload,
		CurrentStep: first,
		StepStatus:  map[string]StepStatus{first: StepStarted},
		Status:      StatusStarted,
	}, []Action{{Step: first}}
}

// Transition applies the outcome of a reply of step to s and returns the new
// state and the messages to send. It is pure: s is not modified.
//
// Rules: a SUCCEEDED reply to the running step starts the next step, or ends
// the saga SUCCEEDED after the last one. A FAILED reply sets the saga
// ABORTING and compensates the SUCCEEDED steps one at a time, newest first;
// each COMPENSATED reply moves to the next older one, and when none is left
// the saga is ABORTED. Steps without a compensation are marked COMPENSATED
// on the spot. Any other reply yields ErrUnexpectedReply.
func Transition(d Definition, s State, step string, outcome StepStatus) (State, []Action, error) {
	idx, ok := d.step(step)
	if !ok {
		return s, nil, fmt.Errorf("%w: saga %s has no step %q", ErrUnexpectedReply, d.Type, step)
	}
	cur := s.StepStatus[step]
	next := s.clone()
	switch {
	case s.Status == StatusStarted && s.CurrentStep == step && cur == StepStarted && outcome == StepSucceeded:
		next.StepStatus[step] = StepSucceeded
		if idx+1 < len(d.Steps) {
			n := d.Steps[idx+1].Name
			next.CurrentStep = n
			next.StepStatus[n] = StepStarted
			return next, []Action{{Step: n}}, nil
		}
		next.Status = StatusSucceeded
		return next, nil, nil

	case s.Status == StatusStarted && s.CurrentStep == step && cur == StepStarted && outcome == StepFailed:
		next.StepStatus[step] = StepFailed
		next.Status = StatusAborting
		acts := compensateFrom(d, &next, idx-1)
		return next, acts, nil

	case s.Status == StatusAborting && s.CurrentStep == step && cur == StepCompensating && outcome == StepCompensated:
		next.StepStatus[step] = StepCompensated
		acts := compensateFrom(d, &next, idx-1)
		return next, acts, nil
	}
	return s, nil, fmt.Errorf("%w: step %s is %s in %s saga %s, reply says %s",
		ErrUnexpectedReply, step, orNone(cur), s.Status, s.ID, outcome)
}

// compensateFrom compensates the newest SUCCEEDED step at or before index
// from, marking steps without a compensation as COMPENSATED on the way. With
// nothing left to compensate the saga is ABORTED.
func compensateFrom(d Definition, s *State, from int) []Action {
	for i := from; i >= 0; i-- {
		st := d.Steps[i]
		if s.StepStatus[st.Name] != StepSucceeded {
			continue
		}
		if st.Compensate == nil {
			s.StepStatus[st.Name] = StepCompensated
			continue
		}
		s.StepStatus[st.Name] = StepCompensating
		s.CurrentStep = st.Name
		return []Action{{Step: st.Name, Compensate: true}}
	}
	s.Status = StatusAborted
	return nil
}

func orNone(s StepStatus) string {
	if s == "" {
		return "not started"
	}
	return string(s)
}

// message builds the outbox message of action a.
func (d Definition) message(s State, a Action) (Message, error) {
	idx, ok := d.step(a.Step)
	if !ok {
		return Message{}, fmt.Errorf("saga %s: no step %q", d.Type, a.Step)
	}
	st := d.Steps[idx]
	build := st.Request
	if a.Compensate {
		build = st.Compensate
	}
	m, err := build(s.Payload)
	if err != nil {
		return Message{}, fmt.Errorf("build %s message of step %s: %w", kind(a), a.Step, err)
	}
	return m, nil
}

func kind(a Action) string {
	if a.Compensate {
		return "compensation"
	}
	return "request"
}
