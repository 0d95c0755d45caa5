package saga

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// PruneBatch is how many sagas one Prune transaction removes at most: small
// enough that the transitions running beside it do not feel it.
const PruneBatch = 500

// Prune removes, within tx, up to limit sagas of the orchestrator's types
// that ended (SUCCEEDED or ABORTED) longer than retention ago (by the
// database's clock), with their history and what Config.OnPrune removes
// for them, and takes them off the counts; it returns how many it removed.
// Running sagas are never removed. The removal reaches no topic: history
// is not captured, and the sagastate connector does not publish deletes
// (skipped.operations=d,t) — the change stream of sagastate says what
// happened to sagas, and their removal is not one of those things.
func (o *Orchestrator) Prune(ctx context.Context, tx pgx.Tx, retention time.Duration, limit int) (int, error) {
	const pick = `SELECT id FROM sagastate
		WHERE status IN ('SUCCEEDED', 'ABORTED') AND status_since < now() - make_interval(secs => $1) AND type = ANY($2)
		ORDER BY status_since
		LIMIT $3
		FOR UPDATE SKIP LOCKED`
	rows, err := tx.Query(ctx, pick, retention.Seconds(), o.types, limit)
	if err != nil {
		return 0, fmt.Errorf("prune sagas: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	if o.onPrune != nil {
		if err := o.onPrune(ctx, tx, ids); err != nil {
			return 0, fmt.Errorf("prune sagas: what the service keeps for them: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM sagastate_history WHERE saga_id = ANY($1)`, ids); err != nil {
		return 0, fmt.Errorf("prune saga history: %w", err)
	}
	// The counts lose what goes.
	const remove = `WITH gone AS (DELETE FROM sagastate WHERE id = ANY($1) RETURNING type, status)
		INSERT INTO saga_count_change (type, status, n) SELECT type, status, -count(*) FROM gone GROUP BY type, status`
	if _, err := tx.Exec(ctx, remove, ids); err != nil {
		return 0, fmt.Errorf("prune sagas: %w", err)
	}
	return len(ids), nil
}

// RunPruner removes the sagas that ended longer than retention ago, every
// interval until ctx ends, a PruneBatch per transaction until none is
// left; retention 0 keeps them forever. A failed round (the database away)
// is logged and tried again at the next.
func (o *Orchestrator) RunPruner(ctx context.Context, db TxBeginner, retention, interval time.Duration) error {
	if retention <= 0 {
		return nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for {
			var n int
			err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
				var err error
				n, err = o.Prune(ctx, tx, retention, PruneBatch)
				return err
			})
			if err != nil {
				if ctx.Err() == nil {
					o.log.WarnContext(ctx, "saga pruning failed", "err", err)
				}
				break
			}
			if n > 0 {
				o.log.DebugContext(ctx, "ended sagas removed", "sagas", n, "retention", retention)
			}
			if n < PruneBatch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
