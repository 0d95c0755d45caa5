// Package saga is a small orchestration engine for sagas whose messages leave
// through the transactional outbox (pkg/outbox). A saga type is a Definition:
// ordered steps, each with the request that starts it, the message that
// compensates it, the mapping of its replies to a step outcome and its
// Deadline (how long to wait for the participant, how often to ask again).
// The state of every saga instance is one row of the table "sagastate",
// changed only by pure functions (Transition for replies, Timeout for passed
// deadlines, Abort, Retry and MarkCompensated for operators) and persisted
// by the Orchestrator with an optimistic lock, each change with rows of
// "sagastate_history".
//
// The engine knows nothing about orders: the order service defines the
// order-placement saga as data and calls the Orchestrator from its own
// transactions.
package saga

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/sagabox/sagabox/pkg/contract"
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

// Valid reports whether s is one of the four saga statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusStarted, StatusSucceeded, StatusAborting, StatusAborted:
		return true
	}
	return false
}

// StepStatus is the state of one step of a saga.
type StepStatus string

// Step statuses. A step is STARTED when its request is sent, then SUCCEEDED
// or FAILED by its reply. A step whose reply did not come within its deadline
// and retries, or whose saga an operator aborted while it waited, is
// ABANDONED: it may have taken effect at the participant, so it is
// compensated too, after the SUCCEEDED steps. A step being compensated is
// COMPENSATING until its compensation is confirmed: COMPENSATED. An ABORTED
// saga has only FAILED and COMPENSATED steps.
const (
	StepStarted      StepStatus = "STARTED"
	StepSucceeded    StepStatus = "SUCCEEDED"
	StepFailed       StepStatus = "FAILED"
	StepAbandoned    StepStatus = "ABANDONED"
	StepCompensating StepStatus = "COMPENSATING"
	StepCompensated  StepStatus = "COMPENSATED"
)

// Message is a request or compensation a step sends: it becomes one outbox
// event with aggregatetype = the step name, aggregateid = the saga id.
type Message struct {
	Type    string
	Payload json.RawMessage
}

// Deadline is a step's policy for a participant that does not answer. Every
// message the step sends (request or compensation) waits for its reply until
// a deadline; when it passes, the deadline sweeper (Orchestrator.Expire)
// sends a request again up to Retries times, then abandons the step and
// aborts the saga. A compensation is sent again forever: by contract a
// compensation cannot fail for good, and a saga that stays ABORTING is
// visible as stuck instead. Each re-send waits twice as long as the one
// before, at most MaxTimeout.
//
// The zero value means no deadline: the step waits for its reply forever.
type Deadline struct {
	// Timeout is the wait for the reply to the first message; zero means
	// no deadline.
	Timeout time.Duration
	// Retries is how many times a request that timed out is sent again
	// before the step is ABANDONED.
	Retries int
	// MaxTimeout caps the doubling wait of re-sends; zero (or less than
	// Timeout) means every wait is Timeout.
	MaxTimeout time.Duration
}

// Wait returns how long the message sent for the attempt-th time (0 = the
// first time) waits for its reply: Timeout doubled attempt times, at most
// MaxTimeout. It is zero when there is no deadline.
func (p Deadline) Wait(attempt int) time.Duration {
	limit := max(p.MaxTimeout, p.Timeout)
	w := p.Timeout
	for i := 0; i < attempt && w < limit; i++ {
		w *= 2
	}
	return min(w, limit)
}

// at returns the deadline of the attempt-th message sent at now; zero when
// there is none.
func (p Deadline) at(now time.Time, attempt int) time.Time {
	if p.Timeout <= 0 {
		return time.Time{}
	}
	return now.Add(p.Wait(attempt))
}

// Step is one participant call of a saga.
type Step struct {
	// Name identifies the step in the saga state and routes its messages
	// (the outbox aggregatetype, hence the topic "<name>.request").
	Name string
	// Request builds the message that starts the step from the saga payload.
	// A participant must answer a repeated request of the same saga with
	// the same reply and no second effect: retries re-send it.
	Request func(payload json.RawMessage) (Message, error)
	// Compensate builds the message that undoes the step. Nil means the
	// step has nothing to undo: it is marked COMPENSATED without a message.
	// A participant must accept a compensation before (or instead of) the
	// request, and answer it as compensated.
	Compensate func(payload json.RawMessage) (Message, error)
	// Outcome maps a reply of the participant to SUCCEEDED, FAILED or
	// COMPENSATED. An error means the reply cannot be understood.
	Outcome func(reply json.RawMessage) (StepStatus, error)
	// Deadline is the step's policy when the participant does not answer.
	Deadline Deadline
	// Contract is the contract of the step's participant, when the step
	// was built from one (Call): its messages' types and reply statuses.
	Contract contract.Info
}

// ReplyTopic is the topic of the step's replies: "<name>.response".
func (s Step) ReplyTopic() string { return contract.Info{Name: s.Name}.ReplyTopic() }

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
		case s.Deadline.Timeout < 0 || s.Deadline.MaxTimeout < 0 || s.Deadline.Retries < 0:
			return fmt.Errorf("saga definition %s: step %s has a negative deadline setting", d.Type, s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

// HasStep reports whether the definition has a step called name.
func (d Definition) HasStep(name string) bool {
	_, ok := d.step(name)
	return ok
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
	// Attempt counts the re-sends of the message the current step waits
	// for (0: sent once).
	Attempt int `json:"attempt"`
	// Deadline is when the deadline sweeper acts on the current step if its
	// reply has not come; zero when nothing waits or the step has no
	// deadline.
	Deadline time.Time `json:"deadline,omitzero"`
	// StatusSince is when the saga entered its Status.
	StatusSince time.Time `json:"statusSince"`
	Version     int       `json:"version"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

func (s State) clone() State {
	c := s
	c.StepStatus = make(map[string]StepStatus, len(s.StepStatus))
	for k, v := range s.StepStatus {
		c.StepStatus[k] = v
	}
	return c
}

func (s *State) setStatus(st Status, now time.Time) {
	if s.Status != st {
		s.Status, s.StatusSince = st, now
	}
}

// Action is a message the saga must send after a transition: the request or
// the compensation of Step.
type Action struct {
	Step       string
	Compensate bool
}

// ErrUnexpectedReply reports a late reply: one that answers a message the
// saga no longer waits for (its step settled already, or the saga ended). It
// is what a redelivered reply, or the answer to a request sent again,
// looks like; callers log it and change nothing.
var ErrUnexpectedReply = errors.New("unexpected reply")

// ErrEarlyReply reports a reply that is ahead of the saga's state as read:
// it answers a message the state does not show as sent yet (a request of a
// step not started, a compensation not begun). The transaction that sent
// that message has committed — its outbox row was published, and the
// participant answered — but is not visible to this reader yet: PostgreSQL
// flushes a commit (which logical decoding streams at once) before the
// committing backend makes it visible to other sessions, and with Debezium
// and Kafka the whole round trip can fit in that gap. It is transient:
// retry the reply shortly, with a fresh read, until the state catches up.
var ErrEarlyReply = errors.New("reply ahead of the saga state")

// ErrNotDue reports a saga whose deadline has not passed (or that has none).
var ErrNotDue = errors.New("saga deadline not passed")

// ErrWrongState reports an operator action that does not apply to the saga
// as it is: aborting a saga that already ended or is aborting, retrying when
// no step waits, marking compensated a step that is not being compensated.
var ErrWrongState = errors.New("action does not apply to the saga's state")

// Begin returns the first state of a saga started at now and the action that
// starts it.
func Begin(d Definition, id uuid.UUID, payload json.RawMessage, now time.Time) (State, []Action) {
	s := State{
		ID:          id,
		Type:        d.Type,
		Payload:     payload,
		StepStatus:  map[string]StepStatus{},
		Status:      StatusStarted,
		StatusSince: now,
	}
	return s, []Action{start(d, &s, 0, now)}
}

// Transition applies the outcome of a reply of step, received at now, to s
// and returns the new state and the messages to send. It is pure: s is not
// modified.
//
// Rules: a SUCCEEDED reply to the running step starts the next step, or ends
// the saga SUCCEEDED after the last one. A FAILED reply sets the saga
// ABORTING and compensates the SUCCEEDED steps one at a time, newest first,
// then the ABANDONED ones; each COMPENSATED reply moves to the next, and
// when none is left the saga is ABORTED. Steps without a compensation are
// marked COMPENSATED on the spot. Any other reply is ErrEarlyReply when it
// answers a message s does not show as sent yet (see early), else
// ErrUnexpectedReply: a late reply, to a step that does not wait for one any
// more or after the saga ended, or of no known kind.
func Transition(d Definition, s State, step string, outcome StepStatus, now time.Time) (State, []Action, error) {
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
			return next, []Action{start(d, &next, idx+1, now)}, nil
		}
		next.setStatus(StatusSucceeded, now)
		next.Attempt, next.Deadline = 0, time.Time{}
		return next, nil, nil

	case s.Status == StatusStarted && s.CurrentStep == step && cur == StepStarted && outcome == StepFailed:
		next.StepStatus[step] = StepFailed
		next.setStatus(StatusAborting, now)
		return next, compensateNext(d, &next, now), nil

	case s.Status == StatusAborting && s.CurrentStep == step && cur == StepCompensating && outcome == StepCompensated:
		next.StepStatus[step] = StepCompensated
		return next, compensateNext(d, &next, now), nil
	}
	kind := ErrUnexpectedReply
	if early(s.Status, cur, outcome, d.Steps[idx].Compensate != nil) {
		kind = ErrEarlyReply
	}
	return s, nil, fmt.Errorf("%w: step %s is %s in %s saga %s, reply says %s",
		kind, step, orNone(cur), s.Status, s.ID, outcome)
}

// early reports whether a reply with outcome, for a step whose status is cur
// in a saga of status, answers a message that the state does not show as
// sent yet. SUCCEEDED and FAILED answer the step's request, which is sent
// when the step starts; COMPENSATED answers its compensation, which is sent
// when the step becomes COMPENSATING (only ever from SUCCEEDED or
// ABANDONED, and only if it is compensable). A saga that ended sends
// nothing more: every reply to it is late.
func early(status Status, cur, outcome StepStatus, compensable bool) bool {
	if status.Done() {
		return false
	}
	switch outcome {
	case StepSucceeded, StepFailed:
		return cur == ""
	case StepCompensated:
		return compensable && (cur == "" || cur == StepStarted || cur == StepSucceeded || cur == StepAbandoned)
	}
	return false
}

// Timeout applies a passed deadline at now: the current step's request is
// sent again while it has retries left, else the step is ABANDONED and the
// saga aborts; a compensation is sent again, always. It returns ErrNotDue
// when s has no deadline or it lies after now. A deadline on a saga whose
// current step waits for nothing (which only a hand-edited row can have) is
// dropped. It is pure: s is not modified.
func Timeout(d Definition, s State, now time.Time) (State, []Action, error) {
	if s.Status.Done() || s.Deadline.IsZero() || now.Before(s.Deadline) {
		return s, nil, fmt.Errorf("saga %s: %w", s.ID, ErrNotDue)
	}
	next := s.clone()
	idx, ok := d.step(s.CurrentStep)
	cur := s.StepStatus[s.CurrentStep]
	switch {
	case ok && s.Status == StatusStarted && cur == StepStarted:
		if s.Attempt < d.Steps[idx].Deadline.Retries {
			return next, []Action{resend(d, &next, idx, false, now)}, nil
		}
		return next, abandon(d, &next, now), nil
	case ok && s.Status == StatusAborting && cur == StepCompensating:
		return next, []Action{resend(d, &next, idx, true, now)}, nil
	}
	next.Deadline = time.Time{}
	return next, nil, nil
}

// Abort is the operator forcing compensation of a running saga at now: the
// step waiting for its reply is ABANDONED and the saga aborts as if that
// step had timed out for good. ErrWrongState if the saga is not STARTED.
func Abort(d Definition, s State, now time.Time) (State, []Action, error) {
	if s.Status != StatusStarted {
		return s, nil, fmt.Errorf("%w: abort saga %s: it is %s", ErrWrongState, s.ID, s.Status)
	}
	next := s.clone()
	return next, abandon(d, &next, now), nil
}

// Retry is the operator sending the message the current step waits for
// again at now (its request, or its compensation), counted as one more
// attempt. ErrWrongState if no step waits.
func Retry(d Definition, s State, now time.Time) (State, []Action, error) {
	idx, ok := d.step(s.CurrentStep)
	cur := s.StepStatus[s.CurrentStep]
	next := s.clone()
	switch {
	case ok && s.Status == StatusStarted && cur == StepStarted:
		return next, []Action{resend(d, &next, idx, false, now)}, nil
	case ok && s.Status == StatusAborting && cur == StepCompensating:
		return next, []Action{resend(d, &next, idx, true, now)}, nil
	}
	return s, nil, fmt.Errorf("%w: retry saga %s: it is %s, step %s is %s",
		ErrWrongState, s.ID, s.Status, s.CurrentStep, orNone(cur))
}

// MarkCompensated is the operator confirming by hand, at now, the
// compensation of step that the saga waits for (the participant will never
// answer it): the saga goes on as if the COMPENSATED reply had come.
// ErrWrongState unless the saga is ABORTING and step is COMPENSATING.
func MarkCompensated(d Definition, s State, step string, now time.Time) (State, []Action, error) {
	cur := s.StepStatus[step]
	if _, ok := d.step(step); !ok || s.Status != StatusAborting || s.CurrentStep != step || cur != StepCompensating {
		return s, nil, fmt.Errorf("%w: mark step %s compensated in saga %s: the saga is %s, the step %s",
			ErrWrongState, step, s.ID, s.Status, orNone(cur))
	}
	next := s.clone()
	next.StepStatus[step] = StepCompensated
	return next, compensateNext(d, &next, now), nil
}

// start makes step idx the current one and sends its request.
func start(d Definition, s *State, idx int, now time.Time) Action {
	st := d.Steps[idx]
	s.CurrentStep = st.Name
	s.StepStatus[st.Name] = StepStarted
	s.Attempt, s.Deadline = 0, st.Deadline.at(now, 0)
	return Action{Step: st.Name}
}

// resend sends the current message of step idx once more.
func resend(d Definition, s *State, idx int, compensate bool, now time.Time) Action {
	st := d.Steps[idx]
	s.Attempt++
	s.Deadline = st.Deadline.at(now, s.Attempt)
	return Action{Step: st.Name, Compensate: compensate}
}

// abandon gives up waiting for the current step and aborts the saga.
func abandon(d Definition, s *State, now time.Time) []Action {
	s.StepStatus[s.CurrentStep] = StepAbandoned
	s.setStatus(StatusAborting, now)
	return compensateNext(d, s, now)
}

// compensateNext compensates the newest SUCCEEDED step, or when none is
// left the newest ABANDONED one, marking steps without a compensation as
// COMPENSATED on the way. With nothing left to compensate the saga is
// ABORTED.
//
// ABANDONED steps come last because their participant is the one that did
// not answer: waiting for it first would hold every other step's effect
// (the customer's credit) for as long as it is down.
func compensateNext(d Definition, s *State, now time.Time) []Action {
	for _, want := range []StepStatus{StepSucceeded, StepAbandoned} {
		for i := len(d.Steps) - 1; i >= 0; i-- {
			st := d.Steps[i]
			if s.StepStatus[st.Name] != want {
				continue
			}
			if st.Compensate == nil {
				s.StepStatus[st.Name] = StepCompensated
				continue
			}
			s.StepStatus[st.Name] = StepCompensating
			s.CurrentStep = st.Name
			s.Attempt, s.Deadline = 0, st.Deadline.at(now, 0)
			return []Action{{Step: st.Name, Compensate: true}}
		}
	}
	s.setStatus(StatusAborted, now)
	s.Attempt, s.Deadline = 0, time.Time{}
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
