package saga

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// TxBeginner is what the sweeper needs of a database: a pool.
type TxBeginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// maxSweep bounds the sagas one sweep acts on, so that one sweep never runs
// for long; the next one continues.
const maxSweep = 200

// Sweep acts on the sagas past their deadline, one transaction each (see
// Expire): a request is sent again, a step abandoned and compensated, a
// compensation sent again — with Config.OnTransition in the same
// transaction. Sweeps of several processes at once share the due sagas and
// never act twice on one. A saga that fails is logged and left for the
// next sweep (it stays past its deadline, hence listed as stuck), the
// others go on. It returns how many sagas it acted on, and the errors.
func (o *Orchestrator) Sweep(ctx context.Context, db TxBeginner) (int, error) {
	var (
		n      int
		failed []uuid.UUID
		errs   []error
	)
	for n < maxSweep && len(failed) < maxSweep {
		var (
			s     State
			acted bool
		)
		err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			var err error
			s, acted, err = o.Expire(ctx, tx, failed...)
			return err
		})
		if err != nil && s.ID != uuid.Nil && ctx.Err() == nil {
			o.log.ErrorContext(ctx, "saga deadline could not be handled", "saga_id", s.ID, "err", err)
			failed, errs = append(failed, s.ID), append(errs, err)
			continue
		}
		if err != nil {
			return n, fmt.Errorf("sweep saga deadlines: %w", errors.Join(append(errs, err)...))
		}
		if !acted {
			break
		}
		n++
		step := s.CurrentStep
		o.log.InfoContext(ctx, "saga deadline passed", "saga_id", s.ID, "saga_type", s.Type, "saga_step", step,
			"step_status", s.StepStatus[step], "saga_status", s.Status, "attempt", s.Attempt, "version", s.Version)
	}
	if len(errs) > 0 {
		return n, fmt.Errorf("sweep saga deadlines: %d sagas failed: %w", len(errs), errors.Join(errs...))
	}
	return n, nil
}

// RunSweeper sweeps every interval until ctx ends, and folds the changes
// of the saga counts (FoldCounts). A failed sweep or fold (the database
// away) is logged and tried again at the next tick.
func (o *Orchestrator) RunSweeper(ctx context.Context, db TxBeginner, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := o.Sweep(ctx, db); err != nil && ctx.Err() == nil {
			o.log.WarnContext(ctx, "deadline sweep failed", "err", err)
		}
		if _, err := FoldCounts(ctx, db); err != nil && ctx.Err() == nil {
			o.log.WarnContext(ctx, "saga counts fold failed", "err", err)
		}
	}
}
