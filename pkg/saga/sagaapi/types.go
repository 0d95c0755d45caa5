// Package sagaapi is the operator's HTTP API over an orchestrator's sagas,
// as handlers a service mounts (at /admin/sagas, behind its own
// authentication), and the JSON types of its answers, declared once for the
// handlers and every client:
//
//	GET  /admin/sagas                  list, newest first: status, step, type, older_than,
//	                                   newer_than, stuck, limit, after, and the service's
//	                                   payload filters (the order service: customer, order)
//	GET  /admin/sagas/stats            per status now, stuck, and per bucket of a window
//	GET  /admin/sagas/types            the saga types run, with their steps in order
//	GET  /admin/sagas/{id}             one saga with its history (and what the service adds)
//	POST /admin/sagas/{id}/abort       {"reason"}: force compensation (reason required)
//	POST /admin/sagas/{id}/retry       {"reason"}: send what the saga waits for again (body optional)
//	POST /admin/sagas/{id}/compensate  {"step", "reason"}: mark the compensation it waits for done
//
// Every action runs in one transaction with its effects: the saga's
// transition and history (who, what, why), the orchestrator's
// OnTransition, and an audit event through the outbox.
package sagaapi

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/sagabox/sagabox/pkg/saga"
)

// Saga is a saga as the API shows it.
type Saga struct {
	ID   uuid.UUID `json:"id"`
	Type string    `json:"type"`
	// DefinitionVersion is the version of its type's definition the saga
	// runs; UnknownVersion says the service does not hold it, so nothing
	// drives the saga (set by the operator API).
	DefinitionVersion int                        `json:"definitionVersion"`
	UnknownVersion    bool                       `json:"unknownVersion,omitempty"`
	Status            saga.Status                `json:"status"`
	CurrentStep       string                     `json:"currentStep"`
	StepStatus        map[string]saga.StepStatus `json:"stepStatus"`
	// Waits are the steps waiting for a reply, each with the re-sends of
	// its message and its deadline: several when steps run in parallel.
	Waits       map[string]Wait `json:"waits,omitempty"`
	Attempt     int             `json:"attempt"`
	Deadline    *time.Time      `json:"deadline,omitempty"` // absent when nothing waits
	StatusSince time.Time       `json:"statusSince"`
	Version     int             `json:"version"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	CreatedAt   time.Time       `json:"createdAt"`
	UpdatedAt   time.Time       `json:"updatedAt"`
}

// SagaOf returns s as the API shows it, without its payload; times in UTC
// to the millisecond.
func SagaOf(s saga.State) Saga {
	v := Saga{
		ID: s.ID, Type: s.Type, DefinitionVersion: s.DefinitionVersion, Status: s.Status, CurrentStep: s.CurrentStep,
		StepStatus: s.StepStatus, Attempt: s.Attempt, StatusSince: ms(s.StatusSince), Version: s.Version,
		CreatedAt: ms(s.CreatedAt), UpdatedAt: ms(s.UpdatedAt), Deadline: msOrNil(s.Deadline),
	}
	if len(s.Waits) > 0 {
		v.Waits = make(map[string]Wait, len(s.Waits))
		for step, w := range s.Waits {
			v.Waits[step] = Wait{Attempt: w.Attempt, Deadline: msOrNil(w.Deadline)}
		}
	}
	return v
}

// Wait is a step waiting for the reply to its message.
type Wait struct {
	Attempt  int        `json:"attempt"`            // re-sends of the message
	Deadline *time.Time `json:"deadline,omitempty"` // absent for a step without one
}

func msOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	m := ms(t)
	return &m
}

func ms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// List is GET /admin/sagas.
type List struct {
	Sagas []Saga `json:"sagas"`
	// Next continues the listing (query parameter after); empty on the
	// last page.
	Next string `json:"next,omitempty"`
}

// History is one transition's change of one step: a row of
// sagastate_history.
type History struct {
	ID         int64           `json:"id"`
	Version    int             `json:"version"`
	At         time.Time       `json:"at"`
	Step       string          `json:"step"`
	From       saga.StepStatus `json:"from"`
	To         saga.StepStatus `json:"to"`
	SagaStatus saga.Status     `json:"sagaStatus"`
	Attempt    int             `json:"attempt"`
	Deadline   *time.Time      `json:"deadline,omitempty"`
	Cause      saga.Cause      `json:"cause"`
}

// Detail is GET /admin/sagas/{id}: the saga, its history oldest first, and
// the fields the service adds (API.Extra: the order service adds
// "orderId"), at the top level of the JSON object.
type Detail struct {
	Saga    Saga
	History []History
	Extra   map[string]json.RawMessage
}

type detailJSON struct {
	Saga    Saga      `json:"saga"`
	History []History `json:"history"`
}

// MarshalJSON writes the saga, the history and the extra fields in one
// object.
func (d Detail) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(detailJSON{d.Saga, d.History})
	if err != nil || len(d.Extra) == 0 {
		return b, err
	}
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, v := range d.Extra {
		if _, taken := m[k]; !taken {
			m[k] = v
		}
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (d *Detail) UnmarshalJSON(b []byte) error {
	var dj detailJSON
	if err := json.Unmarshal(b, &dj); err != nil {
		return err
	}
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	delete(m, "saga")
	delete(m, "history")
	d.Saga, d.History, d.Extra = dj.Saga, dj.History, m
	return nil
}

// Action is the answer of an operator action: the saga after it.
type Action struct {
	Saga Saga `json:"saga"`
}

// ActionRequest is the body of abort, retry and compensate (Step: the
// compensate's only).
type ActionRequest struct {
	Step   string `json:"step,omitempty"`
	Reason string `json:"reason"`
}

// Stats is GET /admin/sagas/stats: the sagas per status now, how many are
// stuck, and per bucket of the window the sagas started, succeeded and
// aborted, with the p50/p99 time from start to final status of those that
// ended in the window.
type Stats struct {
	At      time.Time             `json:"at"`
	Window  string                `json:"window"`
	Bucket  string                `json:"bucket"`
	Now     map[saga.Status]int64 `json:"now"`
	Stuck   int64                 `json:"stuck"`
	Buckets []Bucket              `json:"buckets"`
	Ended   int64                 `json:"ended"`
	P50Ms   float64               `json:"p50Ms"`
	P99Ms   float64               `json:"p99Ms"`
	// UnknownVersion counts the running sagas of a definition version the
	// service does not hold: nothing drives them.
	UnknownVersion int64 `json:"unknownVersion"`
}

// Bucket is one bucket of Stats.
type Bucket struct {
	Start     time.Time `json:"start"`
	Started   int64     `json:"started"`
	Succeeded int64     `json:"succeeded"`
	Aborted   int64     `json:"aborted"`
}

// Type is a version of a saga type the orchestrator runs: GET
// /admin/sagas/types lists every one it holds.
type Type struct {
	Type    string `json:"type"`
	Version int    `json:"version"`
	// Latest: new sagas of the type start with this version.
	Latest bool `json:"latest"`
	// ForwardOnly: the saga is sent on until it goes through; it cannot
	// be aborted (saga.Definition.ForwardOnly).
	ForwardOnly bool   `json:"forwardOnly,omitempty"`
	Steps       []Step `json:"steps"` // each after the steps it waits for
}

// Step is a step of a saga type.
type Step struct {
	Name string `json:"name"`
	// After names the steps it waits for (none: it starts with the saga).
	After []string `json:"after"`
	// Compensable: the step has a compensation.
	Compensable bool `json:"compensable"`
	// Timeout and Retries are its deadline policy: the wait for a reply
	// ("" when none) and how often a request is sent again.
	Timeout string `json:"timeout,omitempty"`
	Retries int    `json:"retries"`
}

// AuditEvent is the message every operator action sends through the
// outbox, in the transaction of the action (type AuditEventType).
type AuditEvent struct {
	SagaID     uuid.UUID   `json:"sagaId"`
	Action     string      `json:"action"`
	Step       string      `json:"step,omitempty"`
	Actor      string      `json:"actor"`
	Reason     string      `json:"reason,omitempty"`
	SagaStatus saga.Status `json:"sagaStatus"` // after the action
	Version    int         `json:"version"`    // after the action
}

// AuditEventType is the outbox type (Kafka header eventType) of AuditEvent.
const AuditEventType = "OperatorAction"

// Operator actions (saga.Cause.Action, AuditEvent.Action).
const (
	ActionAbort      = "abort"
	ActionRetry      = "retry"
	ActionCompensate = "compensate"
)
