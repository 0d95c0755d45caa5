package app

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/pkg/saga"
)

// SagaStats summarises the order-placement sagas now and over the last
// window, in buckets of bucket (see saga.ReadStats), from one snapshot.
func (a *App) SagaStats(ctx context.Context, window, bucket time.Duration) (saga.Stats, error) {
	if bucket <= 0 || window < bucket || window/bucket > saga.MaxBuckets {
		return saga.Stats{}, fmt.Errorf("%w: window/bucket must make 1 to %d buckets", ErrBadInput, saga.MaxBuckets)
	}
	var st saga.Stats
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	err := pgx.BeginTxFunc(ctx, a.pool, opts, func(tx pgx.Tx) error {
		var err error
		st, err = saga.ReadStats(ctx, tx, saga.StatsQuery{
			Type: PlacementSaga, Window: window, Bucket: bucket, StuckAfter: a.settings.StuckAfter,
		})
		return err
	})
	if err != nil {
		return saga.Stats{}, fmt.Errorf("saga stats: %w", err)
	}
	return st, nil
}
