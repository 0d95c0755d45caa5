// Package saga is a small orchestration engine for sagas whose messages leave
// through the transactional outbox (pkg/outbox). A saga type is a Definition:
// steps, each with the steps it waits for (by default the one before it: a
// chain; several steps whose dependencies succeeded run in parallel), the
// request that starts it, the message that compensates it, the mapping of
// its replies to a step outcome and its Deadline (how long to wait for the
// participant, how often to ask again). A Definition has a version, and a
// saga is driven by the version it started with until it ends.
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
	"maps"
	"slices"
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
	// After names the steps this one waits for: it starts when all of them
	// have SUCCEEDED, in the transition of the last one's reply. Nil means
	// the step before it in Definition.Steps (none for the first: a chain);
	// an empty, non-nil After starts the step with the saga. Every name is
	// of an earlier step, so Steps is an order in which they can run.
	After []string
}

// ReplyTopic is the topic of the step's replies: "<name>.response".
func (s Step) ReplyTopic() string { return contract.Info{Name: s.Name}.ReplyTopic() }

// Definition is a saga type: its name, its version and its steps, each
// after the steps it depends on (Step.After). Compensation runs in the
// reverse order of the dependencies: a step is compensated once every step
// that depended on it is.
type Definition struct {
	Type string
	// Version tells a changed definition from the one before; 0 counts as
	// 1. A saga records the version it started with and is driven by that
	// definition until it ends: a service keeps every version of a type it
	// still has sagas of (see Config.Definitions).
	Version int
	Steps   []Step
	// ForwardOnly marks a saga that must go through: every step is sent
	// again until it is answered (its Deadline retries never run out) and
	// an operator cannot abort it. For steps that cannot fail or be undone
	// — giving back what an earlier saga took.
	ForwardOnly bool
}

// V returns the definition's version: Version, or 1 when it is 0.
func (d Definition) V() int { return max(d.Version, 1) }

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
		after := map[string]bool{}
		for _, dep := range s.After {
			switch {
			case !seen[dep]:
				return fmt.Errorf("saga definition %s: step %s comes after %q, which is not a step before it", d.Type, s.Name, dep)
			case after[dep]:
				return fmt.Errorf("saga definition %s: step %s comes after %s twice", d.Type, s.Name, dep)
			}
			after[dep] = true
		}
		seen[s.Name] = true
	}
	if d.Version < 0 {
		return fmt.Errorf("saga definition %s: negative version %d", d.Type, d.Version)
	}
	return nil
}

// Deps returns the names of the steps step idx waits for (Step.After, or
// the step before it).
func (d Definition) Deps(idx int) []string {
	if d.Steps[idx].After != nil || idx == 0 {
		return d.Steps[idx].After
	}
	return []string{d.Steps[idx-1].Name}
}

// dependsOn reports whether step idx waits for the step called name.
func (d Definition) dependsOn(idx int, name string) bool {
	return slices.Contains(d.Deps(idx), name)
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
	ID   uuid.UUID `json:"id"`
	Type string    `json:"type"`
	// DefinitionVersion is the version of the definition the saga started
	// with, which drives it to its end.
	DefinitionVersion int             `json:"definitionVersion"`
	Payload           json.RawMessage `json:"payload"`
	// CurrentStep is the step the saga's last message was for: while it
	// runs, a step waiting for its reply (the first waiting one in the
	// definition's order when that message's step no longer waits).
	CurrentStep string                `json:"currentStep"`
	StepStatus  map[string]StepStatus `json:"stepStatus"`
	Status      Status                `json:"status"`
	// Waits holds every step waiting for a reply — STARTED, or
	// COMPENSATING — with the re-sends of its message and its deadline.
	// Steps of one saga wait side by side when they run in parallel.
	Waits map[string]Wait `json:"waits,omitempty"`
	// Attempt counts the re-sends of the message CurrentStep waits for (0:
	// sent once).
	Attempt int `json:"attempt"`
	// Deadline is the earliest deadline of Waits, when the deadline
	// sweeper acts; zero when nothing waits or no waiting step has one.
	Deadline time.Time `json:"deadline,omitzero"`
	// StatusSince is when the saga entered its Status.
	StatusSince time.Time `json:"statusSince"`
	Version     int       `json:"version"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// Wait is a step waiting for the reply to its message.
type Wait struct {
	// Attempt counts the re-sends of the message (0: sent once).
	Attempt int `json:"attempt"`
	// Deadline is when the deadline sweeper acts if no reply has come;
	// zero for a step without one.
	Deadline time.Time `json:"deadline,omitzero"`
}

func (s State) clone() State {
	c := s
	c.StepStatus = maps.Clone(s.StepStatus)
	if c.StepStatus == nil {
		c.StepStatus = map[string]StepStatus{}
	}
	c.Waits = maps.Clone(s.Waits)
	if c.Waits == nil {
		c.Waits = map[string]Wait{}
	}
	return c
}

// Upgrade returns s with its Waits filled in when it was stored before
// steps could wait side by side: its current step waits, with the saga's
// attempt and deadline. The transition functions upgrade the state they
// are given.
func (s State) Upgrade() State {
	if len(s.Waits) > 0 || s.Status.Done() {
		return s
	}
	cur := s.StepStatus[s.CurrentStep]
	if s.Status == StatusStarted && cur == StepStarted || s.Status == StatusAborting && cur == StepCompensating {
		s.Waits = map[string]Wait{s.CurrentStep: {Attempt: s.Attempt, Deadline: s.Deadline}}
	}
	return s
}

// wait records that step idx of d waits for the attempt-th sending of its
// message, sent at now, and makes it the current step.
func (s *State) wait(d Definition, idx int, attempt int, now time.Time) {
	st := d.Steps[idx]
	s.Waits[st.Name] = Wait{Attempt: attempt, Deadline: st.Deadline.at(now, attempt)}
	s.CurrentStep = st.Name
}

// summarize sets the saga-wide CurrentStep, Attempt and Deadline from
// Waits (see State).
func (s *State) summarize(d Definition) {
	if len(s.Waits) == 0 {
		s.Attempt, s.Deadline = 0, time.Time{}
		return
	}
	if _, ok := s.Waits[s.CurrentStep]; !ok {
		for _, st := range d.Steps {
			if _, ok := s.Waits[st.Name]; ok {
				s.CurrentStep = st.Name
				break
			}
		}
	}
	s.Attempt = s.Waits[s.CurrentStep].Attempt
	s.Deadline = time.Time{}
	for _, w := range s.Waits {
		if !w.Deadline.IsZero() && (s.Deadline.IsZero() || w.Deadline.Before(s.Deadline)) {
			s.Deadline = w.Deadline
		}
	}
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

// ErrUnknownVersion reports a saga whose definition version the service
// does not hold (it was deployed without it): nothing may drive it, and
// it is left as it is until a service that has the version does.
var ErrUnknownVersion = errors.New("saga definition version unknown here")

// Begin returns the first state of a saga of d started at now and the
// actions that start it: the request of every step that waits for no
// other.
func Begin(d Definition, id uuid.UUID, payload json.RawMessage, now time.Time) (State, []Action) {
	s := State{
		ID:                id,
		Type:              d.Type,
		DefinitionVersion: d.V(),
		Payload:           payload,
		StepStatus:        map[string]StepStatus{},
		Waits:             map[string]Wait{},
		Status:            StatusStarted,
		StatusSince:       now,
	}
	acts := startReady(d, &s, now)
	s.CurrentStep = acts[0].Step
	s.summarize(d)
	return s, acts
}

// Transition applies the outcome of a reply of step, received at now, to s
// and returns the new state and the messages to send. It is pure: s is not
// modified.
//
// Rules: a SUCCEEDED reply to a STARTED step starts every step whose
// dependencies have now all succeeded, or ends the saga SUCCEEDED when
// every step has. A FAILED reply sets the saga ABORTING: the steps still
// waiting for their reply are ABANDONED (they may take effect yet), and
// the compensation runs (see compensate). Each COMPENSATED reply goes on
// with it, and when nothing is left to compensate the saga is ABORTED. Any
// other reply is ErrEarlyReply when it answers a message s does not show
// as sent yet (see early), else ErrUnexpectedReply: a late reply, to a
// step that does not wait for one any more or after the saga ended, or of
// no known kind.
func Transition(d Definition, s State, step string, outcome StepStatus, now time.Time) (State, []Action, error) {
	s = s.Upgrade()
	idx, ok := d.step(step)
	if !ok {
		return s, nil, fmt.Errorf("%w: saga %s has no step %q", ErrUnexpectedReply, d.Type, step)
	}
	cur := s.StepStatus[step]
	next := s.clone()
	var acts []Action
	switch {
	case s.Status == StatusStarted && cur == StepStarted && outcome == StepSucceeded:
		next.StepStatus[step] = StepSucceeded
		delete(next.Waits, step)
		acts = startReady(d, &next, now)
		if allSteps(d, next, StepSucceeded) {
			next.setStatus(StatusSucceeded, now)
		}
	case s.Status == StatusStarted && cur == StepStarted && outcome == StepFailed:
		next.StepStatus[step] = StepFailed
		delete(next.Waits, step)
		acts = abort(d, &next, now)
	case s.Status == StatusAborting && cur == StepCompensating && outcome == StepCompensated:
		next.StepStatus[step] = StepCompensated
		delete(next.Waits, step)
		acts = compensate(d, &next, now)
	default:
		kind := ErrUnexpectedReply
		if early(s.Status, cur, outcome, d.Steps[idx].Compensate != nil) {
			kind = ErrEarlyReply
		}
		return s, nil, fmt.Errorf("%w: step %s is %s in %s saga %s, reply says %s",
			kind, step, orNone(cur), s.Status, s.ID, outcome)
	}
	next.summarize(d)
	return next, acts, nil
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
		return cur == "" && status == StatusStarted
	case StepCompensated:
		return compensable && (cur == "" && status == StatusStarted || cur == StepStarted || cur == StepSucceeded || cur == StepAbandoned)
	}
	return false
}

// Timeout applies the deadlines that have passed at now: a waiting
// request with retries left is sent again, and one without ABANDONS its
// step and aborts the saga; a compensation is sent again, always. It
// returns ErrNotDue when no deadline of s lies at or before now. A saga
// deadline with no step waiting behind it (which only a hand-edited row
// can have) is dropped. It is pure: s is not modified.
func Timeout(d Definition, s State, now time.Time) (State, []Action, error) {
	s = s.Upgrade()
	if s.Status.Done() || s.Deadline.IsZero() || now.Before(s.Deadline) {
		return s, nil, fmt.Errorf("saga %s: %w", s.ID, ErrNotDue)
	}
	next := s.clone()
	for name, w := range next.Waits {
		if !d.HasStep(name) { // a hand-edited row: its deadline is dropped
			w.Deadline = time.Time{}
			next.Waits[name] = w
		}
	}
	var due []int
	for i, st := range d.Steps {
		if w, ok := s.Waits[st.Name]; ok && !w.Deadline.IsZero() && !now.Before(w.Deadline) {
			due = append(due, i)
		}
	}
	for _, i := range due {
		st := d.Steps[i]
		if s.StepStatus[st.Name] == StepStarted && !d.ForwardOnly && s.Waits[st.Name].Attempt >= st.Deadline.Retries {
			acts := abort(d, &next, now)
			next.summarize(d)
			return next, acts, nil
		}
	}
	var acts []Action
	for _, i := range due {
		acts = append(acts, resend(d, &next, i, now))
	}
	next.summarize(d)
	if len(acts) == 0 {
		next.Deadline = time.Time{}
	}
	return next, acts, nil
}

// Abort is the operator forcing compensation of a running saga at now: the
// steps waiting for their reply are ABANDONED and the saga aborts as if
// they had timed out for good. ErrWrongState if the saga is not STARTED,
// or is ForwardOnly.
func Abort(d Definition, s State, now time.Time) (State, []Action, error) {
	s = s.Upgrade()
	if s.Status != StatusStarted {
		return s, nil, fmt.Errorf("%w: abort saga %s: it is %s", ErrWrongState, s.ID, s.Status)
	}
	if d.ForwardOnly {
		return s, nil, fmt.Errorf("%w: abort saga %s: a %s saga only goes forward (retry it instead)", ErrWrongState, s.ID, d.Type)
	}
	next := s.clone()
	acts := abort(d, &next, now)
	next.summarize(d)
	return next, acts, nil
}

// Retry is the operator sending again at now the message step waits for
// (its request, or its compensation), counted as one more attempt; with
// step "", the message of every waiting step. ErrWrongState if step (or,
// for "", any step) does not wait.
func Retry(d Definition, s State, step string, now time.Time) (State, []Action, error) {
	s = s.Upgrade()
	next := s.clone()
	var acts []Action
	for i, st := range d.Steps {
		if _, waits := s.Waits[st.Name]; waits && (step == "" || step == st.Name) && !s.Status.Done() {
			acts = append(acts, resend(d, &next, i, now))
		}
	}
	if len(acts) == 0 {
		what := "no step"
		if step != "" {
			what = "step " + step + " (" + orNone(s.StepStatus[step]) + ") does not"
		}
		return s, nil, fmt.Errorf("%w: retry saga %s: it is %s and %s waits for a reply", ErrWrongState, s.ID, s.Status, what)
	}
	next.summarize(d)
	return next, acts, nil
}

// MarkCompensated is the operator confirming by hand, at now, the
// compensation of step that the saga waits for (the participant will never
// answer it): the saga goes on as if the COMPENSATED reply had come.
// ErrWrongState unless the saga is ABORTING and step is COMPENSATING.
func MarkCompensated(d Definition, s State, step string, now time.Time) (State, []Action, error) {
	s = s.Upgrade()
	cur := s.StepStatus[step]
	if _, ok := d.step(step); !ok || s.Status != StatusAborting || cur != StepCompensating {
		return s, nil, fmt.Errorf("%w: mark step %s compensated in saga %s: the saga is %s, the step %s",
			ErrWrongState, step, s.ID, s.Status, orNone(cur))
	}
	next := s.clone()
	next.StepStatus[step] = StepCompensated
	delete(next.Waits, step)
	acts := compensate(d, &next, now)
	next.summarize(d)
	return next, acts, nil
}

// startReady starts every step not started whose dependencies have all
// SUCCEEDED, in the definition's order.
func startReady(d Definition, s *State, now time.Time) []Action {
	var acts []Action
	for i, st := range d.Steps {
		if s.StepStatus[st.Name] != "" {
			continue
		}
		ready := true
		for _, dep := range d.Deps(i) {
			ready = ready && s.StepStatus[dep] == StepSucceeded
		}
		if ready {
			s.StepStatus[st.Name] = StepStarted
			s.wait(d, i, 0, now)
			acts = append(acts, Action{Step: st.Name})
		}
	}
	return acts
}

// resend sends the message step idx waits for once more.
func resend(d Definition, s *State, idx int, now time.Time) Action {
	name := d.Steps[idx].Name
	s.wait(d, idx, s.Waits[name].Attempt+1, now)
	return Action{Step: name, Compensate: s.StepStatus[name] == StepCompensating}
}

// abort gives up on the steps still waiting for their reply (ABANDONED)
// and turns the saga to compensation.
func abort(d Definition, s *State, now time.Time) []Action {
	for name, st := range s.StepStatus {
		if st == StepStarted {
			s.StepStatus[name] = StepAbandoned
			delete(s.Waits, name)
		}
	}
	s.setStatus(StatusAborting, now)
	return compensate(d, s, now)
}

// compensate starts the compensations that can run now, marking steps
// without one COMPENSATED on the way, and ends the saga ABORTED when
// nothing is left to compensate:
//
//   - a SUCCEEDED step is compensated once no step that depends on it is
//     SUCCEEDED or COMPENSATING: in the reverse order of the dependencies,
//     independent branches side by side (a chain: newest first, one at a
//     time);
//   - ABANDONED steps are compensated, side by side, once no step is
//     SUCCEEDED or COMPENSATING any more. They come last because their
//     participant may be the one that did not answer: waiting for it first
//     would hold every other step's effect (the customer's credit) for as
//     long as it is down.
func compensate(d Definition, s *State, now time.Time) []Action {
	var acts []Action
	begin := func(i int) {
		st := d.Steps[i]
		if st.Compensate == nil {
			s.StepStatus[st.Name] = StepCompensated
			return
		}
		s.StepStatus[st.Name] = StepCompensating
		s.wait(d, i, 0, now)
		acts = append(acts, Action{Step: st.Name, Compensate: true})
	}
	// From the last step back, so that a step marked COMPENSATED on the
	// spot frees the steps it depends on in the same pass.
	for i := len(d.Steps) - 1; i >= 0; i-- {
		if s.StepStatus[d.Steps[i].Name] == StepSucceeded && !heldBy(d, *s, i) {
			begin(i)
		}
	}
	if !anyStep(d, *s, StepSucceeded, StepCompensating) {
		for i := len(d.Steps) - 1; i >= 0; i-- {
			if s.StepStatus[d.Steps[i].Name] == StepAbandoned {
				begin(i)
			}
		}
	}
	if !anyStep(d, *s, StepSucceeded, StepCompensating, StepAbandoned) {
		s.setStatus(StatusAborted, now)
		clear(s.Waits)
	}
	return acts
}

// heldBy reports whether a step that depends on step idx is SUCCEEDED or
// COMPENSATING: idx is compensated after it.
func heldBy(d Definition, s State, idx int) bool {
	name := d.Steps[idx].Name
	for j := idx + 1; j < len(d.Steps); j++ {
		if st := s.StepStatus[d.Steps[j].Name]; (st == StepSucceeded || st == StepCompensating) && d.dependsOn(j, name) {
			return true
		}
	}
	return false
}

// allSteps reports whether every step of d is want in s.
func allSteps(d Definition, s State, want StepStatus) bool {
	for _, st := range d.Steps {
		if s.StepStatus[st.Name] != want {
			return false
		}
	}
	return true
}

// anyStep reports whether a step of d is one of want in s.
func anyStep(d Definition, s State, want ...StepStatus) bool {
	for _, st := range d.Steps {
		if slices.Contains(want, s.StepStatus[st.Name]) {
			return true
		}
	}
	return false
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
