// Package participant is what every saga participant needs, so that a
// participant is its business logic: for each step it serves, what to do and
// what to undo inside the transaction it is given. The library owns the
// rest — decoding the step's messages (pkg/contract), the barrier that makes
// every order of delivery safe, idempotent answers, the reply through the
// outbox, permanent versus transient errors, and the lookup of what a step
// did for a saga. It does not import the orchestrator (pkg/saga).
//
// The barrier. Every message of a saga for a step, REQUEST or CANCEL,
// whichever comes first, inserts (or finds, and locks) the saga's row of the
// table participant_step (this package's migration, Migrations):
//
//	REQUEST first            Do runs: DONE (reply Succeeded) or REFUSED (reply Failed)
//	REQUEST again            the first answer; Do does not run again
//	CANCEL after DONE        Undo runs, once: UNDONE (reply Cancelled)
//	CANCEL after REFUSED     nothing to undo (reply Cancelled)
//	CANCEL first             the row CANCELLED, a marker: nothing done (reply Cancelled)
//	REQUEST after a CANCEL   refused, Do never runs (reply Failed)
//	CANCEL again             nothing (reply Cancelled)
//
// The row is inserted under its primary key before anything else, so two
// messages of one saga handled at once are applied one after the other:
// PostgreSQL's unique check waits for a conflicting transaction that is
// still running — also one whose commit is flushed but not visible yet,
// the gap a reply can outrun (see pkg/consumer's Early) — then finds its
// row. The row also keeps what Do returned (its record), which Undo gets
// and Lookup shows.
package participant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/contract"
	"github.com/sagabox/sagabox/pkg/outbox"
)

// Call is one message of a saga for a step: whose, what kind and what it
// asks.
type Call[R any] struct {
	SagaID  uuid.UUID
	Kind    contract.Kind
	Request R
	// EventID is the message's id (its Kafka header "id").
	EventID uuid.UUID
}

// Step is a saga step a participant serves: its contract, what it does and
// what it undoes. R is the step's request payload; S the record of what Do
// did, kept with the saga's barrier row (as JSON), handed to Undo and shown
// by Lookup.
type Step[R, S any] struct {
	Contract contract.Step[R]
	// Do applies a request within tx, which it must not commit. It returns
	// its record and whether the step took effect: false refuses it (the
	// reply is the contract's Failed), and a refusal should change nothing
	// (its record is kept all the same). It runs at most once per saga. An
	// error rolls tx back: the message is retried, or parked when the error
	// is consumer.Permanent (a request that can never be applied).
	Do func(ctx context.Context, tx pgx.Tx, c Call[R]) (S, bool, error)
	// Undo reverses what a Do that took effect did, given its record,
	// within tx. It runs at most once per saga, and never for a refused or
	// never-run Do. Nil: the step has nothing to undo.
	Undo func(ctx context.Context, tx pgx.Tx, c Call[R], done S) error
	// Forget removes, within tx, what the step keeps for sagas whose step
	// records go (Participant.Prune), before they go: the payment
	// service's payments. Nil: nothing beyond the records.
	Forget func(ctx context.Context, tx pgx.Tx, sagaIDs []uuid.UUID) error
}

// Handler is a Step of any payload and record types, as New takes them.
type Handler interface {
	// Info is the step's contract.
	Info() contract.Info
	// apply handles message m within tx and returns its saga, its kind
	// and the status to reply.
	apply(ctx context.Context, tx pgx.Tx, m consumer.Message) (uuid.UUID, contract.Kind, contract.Status, error)
	// forget removes what the step keeps for sagas whose records go.
	forget(ctx context.Context, tx pgx.Tx, sagaIDs []uuid.UUID) error
}

// Info returns the step's contract.
func (s Step[R, S]) Info() contract.Info { return s.Contract.Info() }

func (s Step[R, S]) forget(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) error {
	if s.Forget == nil {
		return nil
	}
	return s.Forget(ctx, tx, ids)
}

// Barrier statuses (participant_step.status): what a step did for a saga.
const (
	StatusDone      = "DONE"      // Do took effect; held until a CANCEL
	StatusRefused   = "REFUSED"   // Do refused; nothing held
	StatusCancelled = "CANCELLED" // a CANCEL came first: nothing done, a later REQUEST is refused
	StatusUndone    = "UNDONE"    // was DONE, then undone by a CANCEL: net nothing
)

// Decode reads message m of the step: the saga id from its key, the kind
// from its eventType header, the request from its value. Its errors are
// permanent: such a message can never be applied.
func (s Step[R, S]) Decode(m consumer.Message) (Call[R], error) {
	sagaID, err := m.SagaID()
	if err != nil {
		return Call[R]{}, err
	}
	k := contract.Kind(m.EventType)
	req, err := s.Contract.DecodeRequest(k, m.Value)
	if err != nil {
		return Call[R]{}, consumer.Permanent(err)
	}
	return Call[R]{SagaID: sagaID, Kind: k, Request: req, EventID: m.ID}, nil
}

func (s Step[R, S]) apply(ctx context.Context, tx pgx.Tx, m consumer.Message) (uuid.UUID, contract.Kind, contract.Status, error) {
	c, err := s.Decode(m)
	if err != nil {
		return uuid.Nil, "", "", err
	}
	st, err := s.answer(ctx, tx, c)
	return c.SagaID, c.Kind, st, err
}

// answer applies call c through the barrier and returns the status to
// reply.
func (s Step[R, S]) answer(ctx context.Context, tx pgx.Tx, c Call[R]) (contract.Status, error) {
	sagaID, k := c.SagaID, c.Kind
	first := StatusDone
	if k == contract.Cancel {
		first = StatusCancelled
	}
	prev, record, claimed, err := claim(ctx, tx, s.Contract.Name, sagaID, first)
	if err != nil {
		return "", err
	}
	if k != contract.Cancel {
		if !claimed {
			if prev == StatusDone {
				return s.Contract.Succeeded, nil // a repeated request gets the first answer
			}
			return s.Contract.Failed, nil // refused before, or cancelled already
		}
		done, ok, err := s.Do(ctx, tx, c)
		if err != nil {
			return "", err
		}
		status, reply := StatusDone, s.Contract.Succeeded
		if !ok {
			status, reply = StatusRefused, s.Contract.Failed
		}
		return reply, settle(ctx, tx, s.Contract.Name, sagaID, status, done)
	}
	return s.Contract.Cancelled, s.undo(ctx, tx, c, prev, record, claimed)
}

// undo is a CANCEL of call c through the barrier, whose row was prev with
// record before it (claimed: the CANCEL inserted it): what a DONE step did
// is undone, once; anything else has nothing left to undo.
func (s Step[R, S]) undo(ctx context.Context, tx pgx.Tx, c Call[R], prev string, record []byte, claimed bool) error {
	if claimed || prev != StatusDone {
		return nil // a marker, or nothing left to undo
	}
	if s.Undo != nil {
		var done S
		if err := json.Unmarshal(record, &done); err != nil {
			return fmt.Errorf("read the record of step %s of saga %s: %w", s.Contract.Name, c.SagaID, err)
		}
		if err := s.Undo(ctx, tx, c, done); err != nil {
			return err
		}
	}
	return settle(ctx, tx, s.Contract.Name, c.SagaID, StatusUndone, json.RawMessage(record))
}

// Reversed is the record of a Reversal: the saga whose step it undid, and
// that step's barrier status before (DONE: undone now; UNDONE: undone
// before, by that saga's compensation; REFUSED or CANCELLED: nothing was
// done; "" — no row: nothing done, and the step is now CANCELLED, so that
// a late request of that saga is refused).
type Reversed struct {
	SagaID uuid.UUID `json:"sagaId"`
	Was    string    `json:"was"`
}

// Reversal returns the step of contract c that undoes what step of did
// for another saga — the saga and the request that target reads from c's
// request — exactly as that saga's own CANCEL would: through of's barrier
// row, so that the reversal and the other saga's compensation undo it once
// between them, in whichever order they come. It never fails: with
// nothing to undo it succeeds, having done nothing. It cannot be undone
// (a CANCEL of it answers Cancelled and changes nothing): the saga calling
// it should be ForwardOnly. A shop's order cancellation is one: refund
// the payment step of the order's placement saga.
func Reversal[Q, R, S any](c contract.Step[Q], of Step[R, S], target func(Q) (sagaID uuid.UUID, call R)) Step[Q, Reversed] {
	return Step[Q, Reversed]{
		Contract: c,
		Do: func(ctx context.Context, tx pgx.Tx, call Call[Q]) (Reversed, bool, error) {
			id, req := target(call.Request)
			if id == uuid.Nil {
				return Reversed{}, false, consumer.Permanent(fmt.Errorf("%s: the request names no saga to reverse", c.Name))
			}
			prev, record, claimed, err := claim(ctx, tx, of.Contract.Name, id, StatusCancelled)
			if err != nil {
				return Reversed{}, false, err
			}
			undo := Call[R]{SagaID: id, Kind: contract.Cancel, Request: req, EventID: call.EventID}
			if err := of.undo(ctx, tx, undo, prev, record, claimed); err != nil {
				return Reversed{}, false, err
			}
			was := prev
			if claimed {
				was = ""
			}
			return Reversed{SagaID: id, Was: was}, true, nil
		},
	}
}

// claim inserts the barrier row of (step, saga) with status unless it
// exists, and returns the row's status and record before the message: the
// existing row's (claimed false), or status (claimed true). Either way the
// row is locked until tx ends.
func claim(ctx context.Context, tx pgx.Tx, step string, sagaID uuid.UUID, status string) (string, []byte, bool, error) {
	const insert = `INSERT INTO participant_step (step, saga_id, status) VALUES ($1, $2, $3)
		ON CONFLICT (step, saga_id) DO NOTHING`
	tag, err := tx.Exec(ctx, insert, step, sagaID, status)
	if err != nil {
		return "", nil, false, fmt.Errorf("claim step %s of saga %s: %w", step, sagaID, err)
	}
	if tag.RowsAffected() == 1 {
		return status, nil, true, nil
	}
	const lock = `SELECT status, record FROM participant_step WHERE step = $1 AND saga_id = $2 FOR UPDATE`
	var (
		prev   string
		record []byte
	)
	if err := tx.QueryRow(ctx, lock, step, sagaID).Scan(&prev, &record); err != nil {
		return "", nil, false, fmt.Errorf("read step %s of saga %s: %w", step, sagaID, err)
	}
	return prev, record, false, nil
}

// settle records the step's status and record.
func settle(ctx context.Context, tx pgx.Tx, step string, sagaID uuid.UUID, status string, record any) error {
	b, err := json.Marshal(record)
	if err != nil {
		return fmt.Errorf("encode the record of step %s of saga %s: %w", step, sagaID, err)
	}
	const q = `UPDATE participant_step SET status = $3, record = $4, updated_at = now() WHERE step = $1 AND saga_id = $2`
	if _, err := tx.Exec(ctx, q, step, sagaID, status, string(b)); err != nil {
		return fmt.Errorf("record step %s of saga %s: %w", step, sagaID, err)
	}
	return nil
}

// Participant serves the steps it was built with: it consumes their
// request topics (Handle) and answers through the outbox.
type Participant struct {
	log   *slog.Logger
	steps map[string]Handler // by request topic
	infos []contract.Info
}

// New returns a participant serving steps; their names must differ.
func New(log *slog.Logger, steps ...Handler) (*Participant, error) {
	p := &Participant{log: log, steps: map[string]Handler{}}
	for _, s := range steps {
		i := s.Info()
		if i.Name == "" {
			return nil, errors.New("participant: a step without a name")
		}
		if _, dup := p.steps[i.RequestTopic()]; dup {
			return nil, fmt.Errorf("participant: step %s given twice", i.Name)
		}
		p.steps[i.RequestTopic()] = s
		p.infos = append(p.infos, i)
	}
	if len(p.infos) == 0 {
		return nil, errors.New("participant: no step")
	}
	return p, nil
}

// Steps returns the contracts of the steps served, in New's order.
func (p *Participant) Steps() []contract.Info { return p.infos }

// Topics returns the request topics to consume.
func (p *Participant) Topics() []string {
	topics := make([]string, len(p.infos))
	for i, s := range p.infos {
		topics[i] = s.RequestTopic()
	}
	return topics
}

// Handle applies one request message within tx (a consumer.Handler: the
// consumer journals the message in the same transaction) and writes the
// reply to the outbox. A message that does not follow its step's contract
// — a key that is not a saga id, an unknown type, a payload that does not
// decode — is a permanent error: it is parked, never retried.
func (p *Participant) Handle(ctx context.Context, tx pgx.Tx, m consumer.Message) error {
	s, ok := p.steps[m.Topic]
	if !ok {
		return consumer.Permanent(fmt.Errorf("no step is served on topic %s", m.Topic))
	}
	sagaID, k, status, err := s.apply(ctx, tx, m)
	if err != nil {
		return fmt.Errorf("%s %s of saga %s: %w", s.Info().Name, k, sagaID, err)
	}
	info := s.Info()
	p.log.DebugContext(ctx, "step message answered", "saga_id", sagaID, "saga_step", info.Name,
		"event_id", m.ID, "event_type", k, "status", status)
	return outbox.Write(ctx, tx, outbox.Event{
		AggregateType: info.Name, AggregateID: sagaID.String(), Type: info.ReplyType, Payload: info.EncodeReply(status),
	})
}

// Record is what a step did for a saga: its barrier row.
type Record struct {
	Step      string          `json:"step"`
	SagaID    uuid.UUID       `json:"sagaId"`
	Status    string          `json:"status"`
	Record    json.RawMessage `json:"record,omitempty"` // what Do returned, as JSON
	CreatedAt time.Time       `json:"createdAt"`
	UpdatedAt time.Time       `json:"updatedAt"`
}

// ErrNoRecord reports a saga that sent a step nothing.
var ErrNoRecord = errors.New("no record of this step for this saga")

// Querier is what Lookup needs: a pool, a connection or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Lookup reads what step did for saga sagaID. ErrNoRecord when the saga sent
// it nothing.
func Lookup(ctx context.Context, q Querier, step string, sagaID uuid.UUID) (Record, error) {
	const sql = `SELECT step, saga_id, status, record, created_at, updated_at FROM participant_step
		WHERE step = $1 AND saga_id = $2`
	var r Record
	err := q.QueryRow(ctx, sql, step, sagaID).Scan(&r.Step, &r.SagaID, &r.Status, &r.Record, &r.CreatedAt, &r.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Record{}, fmt.Errorf("look up step %s of saga %s: %w", step, sagaID, ErrNoRecord)
	}
	if err != nil {
		return Record{}, fmt.Errorf("look up step %s of saga %s: %w", step, sagaID, err)
	}
	return r, nil
}
