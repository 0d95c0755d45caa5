package saga

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// CauseKind says what made a saga transition.
type CauseKind string

// Cause kinds, as recorded in sagastate_history.cause.
const (
	CauseStart    CauseKind = "start"    // the saga was created
	CauseReply    CauseKind = "reply"    // a participant's reply (Cause.EventID, Topic, EventType)
	CauseRetry    CauseKind = "retry"    // a deadline passed; the step's message was sent again
	CauseTimeout  CauseKind = "timeout"  // a deadline passed with no retry left; the step was abandoned
	CauseOperator CauseKind = "operator" // an operator action (Cause.Actor, Action, Reason)
)

// Cause is what made a transition, recorded with it in the saga's history:
// the message (a reply), the deadline (retry, timeout) or the operator.
type Cause struct {
	Kind CauseKind `json:"kind"`
	// The message that caused a reply transition.
	EventID   uuid.UUID `json:"eventId,omitzero"`
	Topic     string    `json:"topic,omitempty"`
	EventType string    `json:"eventType,omitempty"`
	// The operator action: who (the name of their token), what, why.
	Actor  string `json:"actor,omitempty"`
	Action string `json:"action,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// HistoryEntry is one row of sagastate_history: one step's change of
// status in one transition. A transition that changes several steps (a
// failure that starts a compensation) has a row per step, all with the same
// Version; one that changes none (a re-sent message) has one row for the
// step concerned, From == To.
type HistoryEntry struct {
	ID         int64      `json:"id"`
	SagaID     uuid.UUID  `json:"sagaId"`
	Version    int        `json:"version"` // the saga's version after the transition
	At         time.Time  `json:"at"`
	Step       string     `json:"step"`
	From       StepStatus `json:"from"` // "" for a step that had not started
	To         StepStatus `json:"to"`
	SagaStatus Status     `json:"sagaStatus"` // after the transition
	Attempt    int        `json:"attempt"`
	Deadline   time.Time  `json:"deadline,omitzero"`
	Cause      Cause      `json:"cause"`
}

// queueHistory queues the history rows of the transition prev → next on b,
// sent in the transaction that persists it; step is the step the cause
// concerns, used when no step changed.
func queueHistory(b *pgx.Batch, prev, next State, step string, cause Cause) {
	const q = `INSERT INTO sagastate_history
		(saga_id, version, step, from_status, to_status, saga_status, attempt, deadline,
		 cause, event_id, topic, event_type, actor, action, reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULLIF($11, ''), NULLIF($12, ''), NULLIF($13, ''), NULLIF($14, ''), NULLIF($15, ''))`
	var eventID *uuid.UUID
	if cause.EventID != uuid.Nil {
		eventID = &cause.EventID
	}
	// The version is the one the update gives next: prev's plus one (zero
	// for a saga being started).
	version := next.Version
	if prev.Type != "" {
		version = prev.Version + 1
	}
	insert := func(step string) {
		b.Queue(q, next.ID, version, step, prev.StepStatus[step], next.StepStatus[step],
			next.Status, next.Attempt, nullTime(next.Deadline), cause.Kind, eventID,
			cause.Topic, cause.EventType, cause.Actor, cause.Action, cause.Reason)
	}
	changed := false
	for _, name := range changedSteps(prev, next) {
		insert(name)
		changed = true
	}
	if !changed {
		insert(step)
	}
}

// changedSteps lists the steps whose status differs between prev and next
// in a stable order: prev's current step (the one the cause concerns)
// first, then the others by name.
func changedSteps(prev, next State) []string {
	var out []string
	if prev.StepStatus[prev.CurrentStep] != next.StepStatus[prev.CurrentStep] {
		out = append(out, prev.CurrentStep)
	}
	var rest []string
	for name, st := range next.StepStatus {
		if name != prev.CurrentStep && prev.StepStatus[name] != st {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// History returns every transition of saga id, oldest first. ErrNotFound
// for an unknown saga.
func History(ctx context.Context, q Querier, id uuid.UUID) ([]HistoryEntry, error) {
	if _, err := Load(ctx, q, id); err != nil {
		return nil, err
	}
	const sql = `SELECT id, saga_id, version, at, step, from_status, to_status, saga_status, attempt, deadline,
			cause, event_id, coalesce(topic, ''), coalesce(event_type, ''), coalesce(actor, ''), coalesce(action, ''), coalesce(reason, '')
		FROM sagastate_history WHERE saga_id = $1 ORDER BY id`
	rows, err := q.Query(ctx, sql, id)
	if err != nil {
		return nil, fmt.Errorf("read history of saga %s: %w", id, err)
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (HistoryEntry, error) {
		var (
			e        HistoryEntry
			deadline *time.Time
			eventID  *uuid.UUID
		)
		err := r.Scan(&e.ID, &e.SagaID, &e.Version, &e.At, &e.Step, &e.From, &e.To, &e.SagaStatus, &e.Attempt, &deadline,
			&e.Cause.Kind, &eventID, &e.Cause.Topic, &e.Cause.EventType, &e.Cause.Actor, &e.Cause.Action, &e.Cause.Reason)
		if deadline != nil {
			e.Deadline = *deadline
		}
		if eventID != nil {
			e.Cause.EventID = *eventID
		}
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read history of saga %s: %w", id, err)
	}
	return entries, nil
}
