package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

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
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Orchestrator runs the sagas of its Definitions over the sagastate and
// sagastate_history tables (Migrations) and the outbox of the same
// database. Every method that changes a saga works inside the caller's
// transaction and never commits: the new state, its history rows, the
// messages it sends and what Config.OnTransition writes commit together or
// not at all. Times (deadlines, history) are the database's transaction
// time, so several orchestrator processes share one clock.
type Orchestrator struct {
	defs         map[string]map[int]Definition // type → version → definition
	latest       map[string]int                // type → the version new sagas start with
	types        []string
	replySteps   map[string]string // reply topic → step
	observers    []Observer
	onTransition func(ctx context.Context, tx pgx.Tx, s State) error
	onPrune      func(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) error
	log          *slog.Logger
}

// Config configures an Orchestrator.
type Config struct {
	// Definitions are the saga types it runs, each in every version it
	// still has sagas of (a type and version once each): a new saga
	// starts with its type's highest version, and each saga is driven by
	// the version it started with.
	Definitions []Definition
	// Observers are told of every transition (see Observer).
	Observers []Observer
	// OnTransition, when set, is called in the transaction of every
	// transition once it is written — a reply, a deadline, an operator's
	// action, not a start — with the saga's new state: what a service
	// keeps in step with its sagas (the order service settles its order).
	// An error rolls the transition back.
	OnTransition func(ctx context.Context, tx pgx.Tx, s State) error
	// OnPrune, when set, is called in the transaction that removes ended
	// sagas (Prune), before they go: what a service keeps for them goes
	// with them (the order service's orders). An error keeps them.
	OnPrune func(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) error
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// New returns an orchestrator for cfg's definitions, which must be valid.
func New(cfg Config) (*Orchestrator, error) {
	o := &Orchestrator{defs: map[string]map[int]Definition{}, latest: map[string]int{}, replySteps: map[string]string{},
		observers: cfg.Observers, onTransition: cfg.OnTransition, onPrune: cfg.OnPrune, log: cfg.Logger}
	if o.log == nil {
		o.log = slog.Default()
	}
	if len(cfg.Definitions) == 0 {
		return nil, errors.New("saga orchestrator: no definition")
	}
	for _, d := range cfg.Definitions {
		if err := d.Validate(); err != nil {
			return nil, err
		}
		versions, known := o.defs[d.Type]
		if !known {
			versions = map[int]Definition{}
			o.defs[d.Type] = versions
			o.types = append(o.types, d.Type)
		}
		if _, dup := versions[d.V()]; dup {
			return nil, fmt.Errorf("saga orchestrator: type %s version %d defined twice", d.Type, d.V())
		}
		versions[d.V()] = d
		o.latest[d.Type] = max(o.latest[d.Type], d.V())
		for _, st := range d.Steps {
			o.replySteps[st.ReplyTopic()] = st.Name
		}
	}
	return o, nil
}

// Definition returns the definition new sagas of sagaType start with: its
// highest version.
func (o *Orchestrator) Definition(sagaType string) (Definition, bool) {
	d, ok := o.defs[sagaType][o.latest[sagaType]]
	return d, ok
}

// DefinitionVersion returns version v of sagaType's definition, if the
// orchestrator holds it.
func (o *Orchestrator) DefinitionVersion(sagaType string, v int) (Definition, bool) {
	d, ok := o.defs[sagaType][v]
	return d, ok
}

// Versions returns the versions of sagaType the orchestrator holds, in
// increasing order.
func (o *Orchestrator) Versions(sagaType string) []int {
	return slices.Sorted(maps.Keys(o.defs[sagaType]))
}

// Known reports whether the orchestrator can drive saga s: it holds the
// version of s's type that s started with.
func (o *Orchestrator) Known(s State) bool {
	_, ok := o.defs[s.Type][s.DefinitionVersion]
	return ok
}

// CountUnknown counts the running sagas (STARTED or ABORTING) of the
// orchestrator's types whose version it does not hold: nothing drives
// them until a service that holds it runs.
func (o *Orchestrator) CountUnknown(ctx context.Context, q Querier) (int64, error) {
	const sql = `SELECT count(*) FROM sagastate
		WHERE status IN ('STARTED', 'ABORTING') AND type = ANY($1)
			AND (type, definition_version) NOT IN (SELECT * FROM unnest($1::text[], $2::int[]))`
	types, versions := o.known()
	var n int64
	if err := q.QueryRow(ctx, sql, types, versions).Scan(&n); err != nil {
		return 0, fmt.Errorf("count sagas of unknown versions: %w", err)
	}
	return n, nil
}

// known returns the (type, version) pairs the orchestrator holds, as two
// parallel lists for a query's unnest.
func (o *Orchestrator) known() ([]string, []int32) {
	var types []string
	var versions []int32
	for _, t := range o.types {
		for _, v := range o.Versions(t) {
			types, versions = append(types, t), append(versions, int32(v))
		}
	}
	return types, versions
}

// Types returns the saga types the orchestrator runs, in Config's order.
func (o *Orchestrator) Types() []string { return o.types }

// def returns the definition saga s runs on: its type's, in the version
// it started with.
func (o *Orchestrator) def(s State) (Definition, error) {
	versions, ok := o.defs[s.Type]
	if !ok {
		return Definition{}, fmt.Errorf("saga %s is of type %s, which this orchestrator does not run: %w", s.ID, s.Type, ErrUnknownType)
	}
	d, ok := versions[s.DefinitionVersion]
	if !ok {
		return Definition{}, fmt.Errorf("saga %s runs version %d of %s; this orchestrator holds versions %v: %w",
			s.ID, s.DefinitionVersion, s.Type, o.Versions(s.Type), ErrUnknownVersion)
	}
	return d, nil
}

// ErrUnknownType reports a saga of a type the orchestrator has no
// definition of: nothing can drive it.
var ErrUnknownType = errors.New("unknown saga type")

// Start creates saga id with payload and writes the request of its first
// step to the outbox, all within tx: the saga exists if and only if its
// first message is sent. Its history starts with a "start" row. now is the
// transaction's clock — now() in tx, e.g. read back from a row tx inserted
// with DEFAULT now() — from which the first deadline runs: every instance
// of a service then uses the database's clock.
func (o *Orchestrator) Start(ctx context.Context, tx pgx.Tx, sagaType string, id uuid.UUID, payload json.RawMessage, now time.Time) (State, error) {
	d, ok := o.Definition(sagaType)
	if !ok {
		return State{}, fmt.Errorf("start saga %s: %w: %s", id, ErrUnknownType, sagaType)
	}
	s, acts := Begin(d, id, payload, now)
	const q = `INSERT INTO sagastate (id, type, definition_version, payload, current_step, step_status, waits, status,
			attempt, deadline, status_since, version)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0)
		RETURNING created_at, updated_at`
	steps, waits, err := encodeSteps(s)
	if err != nil {
		return State{}, err
	}
	// One round trip: the row, its history and its first messages.
	b := &pgx.Batch{}
	b.Queue(q, s.ID, s.Type, s.DefinitionVersion, string(s.Payload), s.CurrentStep, steps, waits, s.Status,
		s.Attempt, nullTime(s.Deadline), s.StatusSince).QueryRow(func(row pgx.Row) error {
		return row.Scan(&s.CreatedAt, &s.UpdatedAt)
	})
	queueHistory(b, State{ID: id}, s, s.CurrentStep, Cause{Kind: CauseStart})
	queueCount(b, s, "", s.Status)
	if err := queueSend(ctx, b, d, s, acts); err != nil {
		return State{}, err
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return State{}, fmt.Errorf("insert saga %s: %w", id, err)
	}
	record(ctx, "saga started", s, s.CurrentStep, CauseStart)
	o.observe(State{}, s, s.CurrentStep, CauseStart)
	return s, nil
}

// Handle applies a reply of step to saga id within tx: it loads the state,
// runs Transition, writes the state back guarded by its version, records
// the transition in the history with cause (the reply message; its Kind is
// set to CauseReply) and writes the resulting messages to the outbox. The
// returned bool is false when the reply was late (see ErrUnexpectedReply)
// and nothing changed; the caller should log it and commit its journal
// entry. ErrNotFound (no saga yet) and ErrEarlyReply (the saga does not show
// the message this reply answers) are what a reply that outran the commit
// of its saga's transition looks like: roll back and retry it shortly (see
// ErrEarlyReply). ErrStale means another transaction updated the saga
// first: roll back and retry.
func (o *Orchestrator) Handle(ctx context.Context, tx pgx.Tx, id uuid.UUID, step string, reply json.RawMessage, cause Cause) (State, bool, error) {
	s, now, err := load(ctx, tx, id, false)
	if err != nil {
		return State{}, false, err
	}
	d, err := o.def(s)
	if err != nil {
		return s, false, err
	}
	idx, ok := d.step(step)
	if !ok {
		return s, false, fmt.Errorf("%w: saga %s has no step %q", ErrUnexpectedReply, d.Type, step)
	}
	outcome, err := d.Steps[idx].Outcome(reply)
	if err != nil {
		return s, false, fmt.Errorf("read %s reply for saga %s: %w: %w", step, id, ErrBadReply, err)
	}
	next, acts, err := Transition(d, s, step, outcome, now)
	if errors.Is(err, ErrUnexpectedReply) {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	cause.Kind = CauseReply
	next, err = o.apply(ctx, tx, d, s, next, acts, step, cause)
	if err != nil {
		return s, false, err
	}
	return next, true, nil
}

// Expire acts on one saga of the orchestrator's types whose deadline has passed, if
// any (see Timeout): it takes the row with the oldest deadline that no other
// transaction holds (SELECT … FOR UPDATE SKIP LOCKED), so that deadline
// sweepers in several processes share the work and never act twice on one
// deadline, and persists the result like Handle, with cause "retry" (a
// message sent again) or "timeout" (the step abandoned). The bool is false
// when no saga is due. Call it in a loop, one transaction per saga, until it
// reports false. On an error the returned state names the saga that failed
// (if one was taken): pass its id in skip for the rest of the sweep, so that
// one saga failing for good does not hold back the others.
func (o *Orchestrator) Expire(ctx context.Context, tx pgx.Tx, skip ...uuid.UUID) (State, bool, error) {
	// Only the sagas of the types and versions it holds: one of a version
	// it does not know is left as it is (Known).
	const q = `SELECT ` + stateColumns + `, now() FROM sagastate
		WHERE deadline <= now() AND NOT (id = ANY($3))
			AND (type, definition_version) IN (SELECT * FROM unnest($1::text[], $2::int[]))
		ORDER BY deadline
		LIMIT 1
		FOR UPDATE SKIP LOCKED`
	if skip == nil {
		skip = []uuid.UUID{}
	}
	types, versions := o.known()
	var now time.Time
	s, err := scanState(tx.QueryRow(ctx, q, types, versions, skip), &now)
	if errors.Is(err, pgx.ErrNoRows) {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("find saga past its deadline: %w", err)
	}
	d, err := o.def(s)
	if err != nil {
		return s, false, err
	}
	next, acts, err := Timeout(d, s, now)
	if errors.Is(err, ErrNotDue) {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	// A message sent again is a retry; a step given up on, a timeout.
	cause := Cause{Kind: CauseRetry}
	if len(acts) == 0 || next.Status != s.Status {
		cause.Kind = CauseTimeout
	}
	next, err = o.apply(ctx, tx, d, s, next, acts, s.CurrentStep, cause)
	if err != nil {
		return s, false, err
	}
	return next, true, nil
}

// Abort forces compensation of saga id (see the pure Abort), recorded with
// cause (an operator action; its Kind is set to CauseOperator). The row is
// locked for the transaction. ErrNotFound, ErrWrongState.
func (o *Orchestrator) Abort(ctx context.Context, tx pgx.Tx, id uuid.UUID, cause Cause) (State, error) {
	return o.operate(ctx, tx, id, cause, "", func(d Definition, s State, now time.Time) (State, []Action, error) {
		return Abort(d, s, now)
	})
}

// Retry sends again now the message step of saga id waits for, or with
// step "" that of every waiting step (see the pure Retry), recorded with
// cause like Abort.
func (o *Orchestrator) Retry(ctx context.Context, tx pgx.Tx, id uuid.UUID, step string, cause Cause) (State, error) {
	return o.operate(ctx, tx, id, cause, step, func(d Definition, s State, now time.Time) (State, []Action, error) {
		return Retry(d, s, step, now)
	})
}

// MarkCompensated confirms by hand the compensation of step in saga id (see
// the pure MarkCompensated), recorded with cause like Abort.
func (o *Orchestrator) MarkCompensated(ctx context.Context, tx pgx.Tx, id uuid.UUID, step string, cause Cause) (State, error) {
	return o.operate(ctx, tx, id, cause, step, func(d Definition, s State, now time.Time) (State, []Action, error) {
		return MarkCompensated(d, s, step, now)
	})
}

func (o *Orchestrator) operate(ctx context.Context, tx pgx.Tx, id uuid.UUID, cause Cause, step string,
	f func(Definition, State, time.Time) (State, []Action, error)) (State, error) {
	s, now, err := load(ctx, tx, id, true)
	if err != nil {
		return State{}, err
	}
	d, err := o.def(s)
	if err != nil {
		return s, fmt.Errorf("%w: %w", ErrWrongState, err)
	}
	next, acts, err := f(d, s, now)
	if err != nil {
		return s, err
	}
	if step == "" {
		step = s.CurrentStep
	}
	cause.Kind = CauseOperator
	return o.apply(ctx, tx, d, s, next, acts, step, cause)
}

// apply persists the transition prev → next of a saga of d: the guarded
// update, the history rows, the messages, then Config.OnTransition.
func (o *Orchestrator) apply(ctx context.Context, tx pgx.Tx, d Definition, prev, next State, acts []Action, step string, cause Cause) (State, error) {
	// One round trip: the guarded update, the history and the messages. A
	// lost optimistic lock fails the batch (the caller's transaction rolls
	// back, history and messages with it).
	b := &pgx.Batch{}
	if err := queueUpdate(b, &next, prev.Version); err != nil {
		return prev, err
	}
	queueHistory(b, prev, next, step, cause)
	queueCount(b, next, prev.Status, next.Status)
	if err := queueSend(ctx, b, d, next, acts); err != nil {
		return prev, err
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		if errors.Is(err, ErrStale) {
			return prev, err
		}
		return prev, fmt.Errorf("update saga %s: %w", next.ID, err)
	}
	if o.onTransition != nil {
		if err := o.onTransition(ctx, tx, next); err != nil {
			return prev, fmt.Errorf("saga %s: after its transition: %w", next.ID, err)
		}
	}
	record(ctx, "saga step "+string(next.StepStatus[step]), next, step, cause.Kind)
	o.observe(prev, next, step, cause.Kind)
	return next, nil
}

// NewID returns the id of a new saga: a UUIDv7, whose first bits are the
// time, so that the indexes keyed by saga id (sagastate's, its history's,
// the participants' step records) take new sagas at their end, where their
// pages stay in memory however much history the tables hold. Its other
// bits are random: Kafka's key hash spreads sagas over partitions as
// before.
func NewID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// queueCount queues the move of saga s from status from ("" for a new
// saga) to status to in the counts of sagas per type and status that the
// stats read instead of counting sagastate; nothing when the status did
// not change. It appends to saga_count_change (FoldCounts folds it into
// saga_count), so that transitions never wait for one another's row.
func queueCount(b *pgx.Batch, s State, from, to Status) {
	switch {
	case from == to:
	case from == "":
		b.Queue(`INSERT INTO saga_count_change (type, status, n) VALUES ($1, $2, 1)`, s.Type, to)
	default:
		b.Queue(`INSERT INTO saga_count_change (type, status, n) VALUES ($1, $2, -1), ($1, $3, 1)`, s.Type, from, to)
	}
}

// queueSend queues the outbox events of acts, of a saga s of d, on b.
func queueSend(ctx context.Context, b *pgx.Batch, d Definition, s State, acts []Action) error {
	events := make([]outbox.Event, 0, len(acts))
	for _, a := range acts {
		m, err := d.message(s, a)
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
	return outbox.Queue(ctx, b, events...)
}

// queueUpdate queues the write of s, if the stored version is still prev,
// bumping the version; a row that changed meanwhile fails the batch with
// ErrStale.
func queueUpdate(b *pgx.Batch, s *State, prev int) error {
	const q = `UPDATE sagastate
		SET current_step = $3, step_status = $4, waits = $5, status = $6, attempt = $7, deadline = $8, status_since = $9,
			version = version + 1, updated_at = now()
		WHERE id = $1 AND version = $2
		RETURNING version, updated_at`
	steps, waits, err := encodeSteps(*s)
	if err != nil {
		return err
	}
	b.Queue(q, s.ID, prev, s.CurrentStep, steps, waits, s.Status, s.Attempt, nullTime(s.Deadline), s.StatusSince).
		QueryRow(func(row pgx.Row) error {
			err := row.Scan(&s.Version, &s.UpdatedAt)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("update saga %s at version %d: %w", s.ID, prev, ErrStale)
			}
			return err
		})
	return nil
}

// encodeSteps returns s's step statuses and waits as their columns hold
// them.
func encodeSteps(s State) (steps, waits []byte, err error) {
	if steps, err = json.Marshal(s.StepStatus); err != nil {
		return nil, nil, fmt.Errorf("encode step status of saga %s: %w", s.ID, err)
	}
	if s.Waits == nil {
		s.Waits = map[string]Wait{}
	}
	if waits, err = json.Marshal(s.Waits); err != nil {
		return nil, nil, fmt.Errorf("encode waits of saga %s: %w", s.ID, err)
	}
	return steps, waits, nil
}

// stateColumns are the sagastate columns scanState reads, in its order.
const stateColumns = `id, type, definition_version, payload, current_step, step_status, waits, status, attempt, deadline,
	status_since, version, created_at, updated_at`

// Load reads saga id.
func Load(ctx context.Context, q Querier, id uuid.UUID) (State, error) {
	const sql = `SELECT ` + stateColumns + ` FROM sagastate WHERE id = $1`
	s, err := scanState(q.QueryRow(ctx, sql, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return State{}, fmt.Errorf("load saga %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return State{}, fmt.Errorf("load saga %s: %w", id, err)
	}
	return s, nil
}

// load reads saga id and the transaction's time, locking the row for the
// transaction when forUpdate is set.
func load(ctx context.Context, q Querier, id uuid.UUID, forUpdate bool) (State, time.Time, error) {
	sql := `SELECT ` + stateColumns + `, now() FROM sagastate WHERE id = $1`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	var now time.Time
	s, err := scanState(q.QueryRow(ctx, sql, id), &now)
	if errors.Is(err, pgx.ErrNoRows) {
		return State{}, now, fmt.Errorf("load saga %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return State{}, now, fmt.Errorf("load saga %s: %w", id, err)
	}
	return s, now, nil
}

// scanState scans stateColumns, and a trailing now() when the row has one.
func scanState(row pgx.Row, now ...*time.Time) (State, error) {
	var (
		s            State
		steps, waits []byte
		deadline     *time.Time
	)
	dest := []any{&s.ID, &s.Type, &s.DefinitionVersion, &s.Payload, &s.CurrentStep, &steps, &waits, &s.Status, &s.Attempt,
		&deadline, &s.StatusSince, &s.Version, &s.CreatedAt, &s.UpdatedAt}
	for _, n := range now {
		dest = append(dest, n)
	}
	if err := row.Scan(dest...); err != nil {
		return State{}, err
	}
	if deadline != nil {
		s.Deadline = *deadline
	}
	if err := json.Unmarshal(steps, &s.StepStatus); err != nil {
		return State{}, fmt.Errorf("decode step status of saga %s: %w", s.ID, err)
	}
	if err := json.Unmarshal(waits, &s.Waits); err != nil {
		return State{}, fmt.Errorf("decode waits of saga %s: %w", s.ID, err)
	}
	return storedDeadline(s.Upgrade()), nil
}

// storedDeadline returns s with the deadline column's say: it is the
// deadline the sweeper and operators see, so a column moved earlier than
// the earliest wait — by hand, or by a migration that made sagas due at
// once — brings the waits due at that earliest time with it.
func storedDeadline(s State) State {
	var earliest time.Time
	for _, w := range s.Waits {
		if !w.Deadline.IsZero() && (earliest.IsZero() || w.Deadline.Before(earliest)) {
			earliest = w.Deadline
		}
	}
	if s.Deadline.IsZero() || earliest.IsZero() || !s.Deadline.Before(earliest) {
		return s
	}
	for name, w := range s.Waits {
		if w.Deadline.Equal(earliest) {
			w.Deadline = s.Deadline
			s.Waits[name] = w
		}
	}
	return s
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
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
func record(ctx context.Context, name string, s State, step string, cause CauseKind) {
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
		attribute.String("saga.cause", string(cause)),
	))
}
