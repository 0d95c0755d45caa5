package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/pkg/outbox"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/services/order/internal/store"
)

// Operator actions on sagas (saga.Cause.Action, AuditEvent.Action).
const (
	ActionAbort      = "abort"
	ActionRetry      = "retry"
	ActionCompensate = "compensate"
)

// AdminAggregate is the outbox aggregatetype of the audit events of operator
// actions: with the order connector they go to topic "order-admin.request",
// keyed by the saga id.
const AdminAggregate = "order-admin"

// AuditEventType is the outbox type (Kafka header eventType) of AuditEvent.
const AuditEventType = "OperatorAction"

// AuditEvent is the message every operator action sends through the outbox,
// in the transaction of the action.
type AuditEvent struct {
	SagaID     uuid.UUID   `json:"sagaId"`
	Action     string      `json:"action"`
	Step       string      `json:"step,omitempty"`
	Actor      string      `json:"actor"`
	Reason     string      `json:"reason,omitempty"`
	SagaStatus saga.Status `json:"sagaStatus"` // after the action
	Version    int         `json:"version"`    // after the action
}

// ErrBadInput reports an operator request that cannot be carried out as
// given; the message says why.
var ErrBadInput = errors.New("invalid request")

// Operator is who acts and why: the name of their admin token and the reason
// they give.
type Operator struct {
	Name   string
	Reason string
}

// MaxReasonLen bounds an operator's reason.
const MaxReasonLen = 1000

// ListSagas returns a page of order-placement sagas, newest first (see
// saga.List); "stuck" means past the deadline or ABORTING for longer than
// Settings.StuckAfter.
func (a *App) ListSagas(ctx context.Context, f saga.Filter) ([]saga.State, bool, error) {
	if f.Status != "" && !f.Status.Valid() {
		return nil, false, fmt.Errorf("%w: unknown saga status %q", ErrBadInput, f.Status)
	}
	if f.Step != "" && !Placement(a.settings).HasStep(f.Step) {
		return nil, false, fmt.Errorf("%w: unknown step %q", ErrBadInput, f.Step)
	}
	if f.Limit < 0 || f.Limit > saga.MaxPage {
		return nil, false, fmt.Errorf("%w: limit must be 1 to %d", ErrBadInput, saga.MaxPage)
	}
	if f.OlderThan < 0 {
		return nil, false, fmt.Errorf("%w: older_than must not be negative", ErrBadInput)
	}
	f.Type, f.StuckAfter = PlacementSaga, a.settings.StuckAfter
	return saga.List(ctx, a.pool, f)
}

// SagaDetail is one saga with its order and its full history.
type SagaDetail struct {
	Saga    saga.State
	OrderID int64
	History []saga.HistoryEntry
}

// GetSagaDetail reads saga id, its order and its history from one snapshot.
func (a *App) GetSagaDetail(ctx context.Context, id uuid.UUID) (SagaDetail, error) {
	var d SagaDetail
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	err := pgx.BeginTxFunc(ctx, a.pool, opts, func(tx pgx.Tx) error {
		var err error
		if d.Saga, err = saga.Load(ctx, tx, id); err != nil {
			return err
		}
		o, err := store.OrderOfSaga(ctx, tx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		d.OrderID = o.ID
		d.History, err = saga.History(ctx, tx, id)
		return err
	})
	if err != nil {
		return SagaDetail{}, err
	}
	return d, nil
}

// AbortSaga forces compensation of running saga id: the step it waits for
// is abandoned and compensated after the steps that succeeded, the order is
// REJECTED. op.Reason is required. saga.ErrNotFound, saga.ErrWrongState.
func (a *App) AbortSaga(ctx context.Context, id uuid.UUID, op Operator) (saga.State, error) {
	if err := op.validate(true); err != nil {
		return saga.State{}, err
	}
	return a.operate(ctx, id, op, ActionAbort, "", func(tx pgx.Tx, c saga.Cause) (saga.State, error) {
		return a.sagas.Abort(ctx, tx, id, c)
	})
}

// RetrySaga sends the message saga id waits for (its current step's request
// or compensation) again now. op.Reason is optional.
func (a *App) RetrySaga(ctx context.Context, id uuid.UUID, op Operator) (saga.State, error) {
	if err := op.validate(false); err != nil {
		return saga.State{}, err
	}
	return a.operate(ctx, id, op, ActionRetry, "", func(tx pgx.Tx, c saga.Cause) (saga.State, error) {
		return a.sagas.Retry(ctx, tx, id, c)
	})
}

// CompensateStep marks by hand the compensation of step, which the ABORTING
// saga id waits for, as done: the saga goes on compensating, or ends
// ABORTED. op.Reason is required. saga.ErrWrongState unless the step is
// the one being compensated.
func (a *App) CompensateStep(ctx context.Context, id uuid.UUID, step string, op Operator) (saga.State, error) {
	err := op.validate(true)
	if !Placement(a.settings).HasStep(step) {
		err = errors.Join(err, fmt.Errorf("%w: unknown step %q", ErrBadInput, step))
	}
	if err != nil {
		return saga.State{}, err
	}
	return a.operate(ctx, id, op, ActionCompensate, step, func(tx pgx.Tx, c saga.Cause) (saga.State, error) {
		return a.sagas.MarkCompensated(ctx, tx, id, step, c)
	})
}

func (op Operator) validate(needReason bool) error {
	var errs []string
	if op.Name == "" {
		errs = append(errs, "no operator name")
	}
	if needReason && strings.TrimSpace(op.Reason) == "" {
		errs = append(errs, "reason is required")
	}
	if len(op.Reason) > MaxReasonLen {
		errs = append(errs, fmt.Sprintf("reason longer than %d bytes", MaxReasonLen))
	}
	if !utf8.ValidString(op.Reason) || strings.ContainsFunc(op.Reason, func(r rune) bool {
		return unicode.IsControl(r) && r != '\n' && r != '\t'
	}) {
		errs = append(errs, "reason must be text: valid UTF-8, no control characters but line breaks and tabs")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrBadInput, strings.Join(errs, "; "))
	}
	return nil
}

// operate runs an operator action in one transaction with its effects: the
// saga transition and its history row, the order settled if the saga's
// outcome is now known, and the audit event.
func (a *App) operate(ctx context.Context, id uuid.UUID, op Operator, action, step string,
	f func(pgx.Tx, saga.Cause) (saga.State, error)) (saga.State, error) {
	cause := saga.Cause{Actor: op.Name, Action: action, Reason: strings.TrimSpace(op.Reason)}
	var s saga.State
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		var err error
		if s, err = f(tx, cause); err != nil {
			return err
		}
		if err := settle(ctx, tx, s); err != nil {
			return err
		}
		payload, err := json.Marshal(AuditEvent{
			SagaID: id, Action: action, Step: step, Actor: op.Name, Reason: cause.Reason,
			SagaStatus: s.Status, Version: s.Version,
		})
		if err != nil {
			return fmt.Errorf("encode audit event: %w", err)
		}
		return outbox.Write(ctx, tx, outbox.Event{
			AggregateType: AdminAggregate, AggregateID: id.String(), Type: AuditEventType, Payload: payload,
		})
	})
	if err != nil {
		return saga.State{}, fmt.Errorf("%s saga %s: %w", action, id, err)
	}
	a.log.InfoContext(ctx, "operator action", "saga_id", id, "action", action, "saga_step", step,
		"actor", op.Name, "reason", cause.Reason, "saga_status", s.Status, "version", s.Version)
	return s, nil
}
