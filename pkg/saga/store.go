package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/sagabox/sagabox/pkg/outbox"
)

// ErrNotFound reports a saga id with no row.
var ErrNotFound = errors.New("saga not found")

// ErrStale reports that the saga row changed between load and update: another
// transaction won the optimistic lock. The caller must roll back and retry
// with the fresh state (a message consumer does so by not acknowledging).
var ErrStale = errors.New("saga state changed concurrently")

// ErrBadReply reports a reply a step's Outcome cannot read; retrying it
// cannot help.
var ErrBadReply = errors.New("unreadable reply")

// Querier is what reads need: a pool, a connection or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Orchestrator runs the sagas of one Definition over the sagastate table and
// the outbox of the same database.
type Orchestrator struct {
	def Definition
}

// New returns an orchestrator for d, which must be valid.
func New(d Definition) (*Orchestrator, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return &Orchestrator{def: d}, nil
}

// Start creates saga id with payload and writes the request of its first
// step to the outbox, all within tx: the saga exists if and only if its
// first message is sent.
func (o *Orchestrator) Start(ctx context.Context, tx pgx.Tx, id uuid.UUID, payload json.RawMessage) (State, error) {
	s, acts := Begin(o.def, id, payload)
	const q = `INSERT INTO sagastate (id, type, payload, current_step, step_status, status, version)
		VALUES ($1, $2, $3, $4, $5, $6, 0)
		RETURNING created_at, updated_at`
	steps, err := json.Marshal(s.StepStatus)
	if err != nil {
		return State{}, fmt.Errorf("encode step status of saga %s: %w", id, err)
	}
	err = tx.QueryRow(ctx, q, s.ID, s.Type, string(s.Payload), s.CurrentStep, steps, s.Status).
		Scan(&s.CreatedAt, &s.UpdatedAt)
	if err != nil {
		return State{}, fmt.Errorf("insert saga %s: %w", id, err)
	}
	if err := o.send(ctx, tx, s, acts); err != nil {
		return State{}, err
	}
	record(ctx, "saga started", s, s.CurrentStep)
	return s, nil
}

// Handle applies a reply of step to saga id within tx: it loads the state,
// runs Transition, writes the state back guarded by its version and writes
// the resulting messages to the outbox. The returned bool is false when the
// reply was unexpected (see ErrUnexpectedReply) and nothing changed; the
// caller should log it and commit its journal entry. ErrStale means another
// transaction updated the saga first: roll back and retry.
func (o *Orchestrator) Handle(ctx context.Context, tx pgx.Tx, id uuid.UUID, step string, reply json.RawMessage) (State, bool, error) {
	s, err := Load(ctx, tx, id)
	if err != nil {
		return State{}, false, err
	}
	if s.Type != o.def.Type {
		return s, false, fmt.Errorf("saga %s is of type %s, not %s", id, s.Type, o.def.Type)
	}
	idx, ok := o.def.step(step)
	if !ok {
		return s, false, fmt.Errorf("%w: saga %s has no step %q", ErrUnexpectedReply, o.def.Type, step)
	}
	outcome, err := o.def.Steps[idx].Outcome(reply)
	if err != nil {
		return s, false, fmt.Errorf("read %s reply for saga %s: %w: %w", step, id, ErrBadReply, err)
	}
	next, acts, err := Transition(o.def, s, step, outcome)
	if errors.Is(err, ErrUnexpectedReply) {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	if err := update(ctx, tx, &next, s.Version); err != nil {
		return s, false, err
	}
	if err := o.send(ctx, tx, next, acts); err != nil {
		return s, false, err
	}
	record(ctx, "saga step "+string(next.StepStatus[step]), next, step)
	return next, true, nil
}

func (o *Orchestrator) send(ctx context.Context, tx pgx.Tx, s State, acts []Action) error {
	events := make([]outbox.Event, 0, len(acts))
	for _, a := range acts {
		m, err := o.def.message(s, a)
		if err != nil {
			return fmt.Errorf("saga %s: %w", s.ID, err)
		}
		events = append(events, outbox.Event{
			AggregateType: a.Step,
			AggregateID:   s.ID.String(),
			Type:          m.Type,
			Payload:       m.Payload,
		})
	}
	return outbox.Write(ctx, tx, events...)
}

// Reply returns the outbox event a participant writes to answer step of
// saga sagaID: payload {"status": status}, routed by the step name (topic
// "<step>.response" with the participants' connectors), keyed by the saga.
func Reply(step, eventType string, sagaID uuid.UUID, status string) outbox.Event {
	payload, _ := json.Marshal(struct {
		Status string `json:"status"`
	}{status}) // cannot fail: a struct of one string
	return outbox.Event{AggregateType: step, AggregateID: sagaID.String(), Type: eventType, Payload: payload}
}

// update writes s if the stored version is still prev and bumps the version.
func update(ctx context.Context, tx pgx.Tx, s *State, prev int) error {
	const q = `UPDATE sagastate
		SET current_step = $3, step_status = $4, status = $5, version = version + 1, updated_at = now()
		WHERE id = $1 AND version = $2
		RETURNING version, updated_at`
	steps, err := json.Marshal(s.StepStatus)
	if err != nil {
		return fmt.Errorf("encode step status of saga %s: %w", s.ID, err)
	}
	err = tx.QueryRow(ctx, q, s.ID, prev, s.CurrentStep, steps, s.Status).Scan(&s.Version, &s.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("update saga %s at version %d: %w", s.ID, prev, ErrStale)
	}
	if err != nil {
		return fmt.Errorf("update saga %s: %w", s.ID, err)
	}
	return nil
}

// Load reads saga id.
func Load(ctx context.Context, q Querier, id uuid.UUID) (State, error) {
	const sql = `SELECT id, type, payload, current_step, step_status, status, version, created_at, updated_at
		FROM sagastate WHERE id = $1`
	var (
		s     State
		steps []byte
	)
	err := q.QueryRow(ctx, sql, id).Scan(&s.ID, &s.Type, &s.Payload, &s.CurrentStep, &steps,
		&s.Status, &s.Version, &s.CreatedAt, &s.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return State{}, fmt.Errorf("load saga %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return State{}, fmt.Errorf("load saga %s: %w", id, err)
	}
	if err := json.Unmarshal(steps, &s.StepStatus); err != nil {
		return State{}, fmt.Errorf("decode step status of saga %s: %w", id, err)
	}
	return s, nil
}

// IsRetryable reports errors after which the same message should be tried
// again: a lost optimistic lock, a serialization failure or deadlock.
func IsRetryable(err error) bool {
	if errors.Is(err, ErrStale) {
		return true
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// record adds a span event describing the transition to the current span.
func record(ctx context.Context, name string, s State, step string) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.AddEvent(name, trace.WithAttributes(
		attribute.String("saga.id", s.ID.String()),
		attribute.String("saga.type", s.Type),
		attribute.String("saga.step", step),
		attribute.String("saga.step.status", string(s.StepStatus[step])),
		attribute.String("saga.status", string(s.Status)),
		attribute.Int("saga.version", s.Version),
	))
}
