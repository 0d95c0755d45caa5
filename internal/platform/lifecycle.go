package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/outbox"
)

// Retention is how long a service keeps the rows that only grow, and the
// retention of the topics it creates, which bounds how late a duplicate
// can arrive. A duplicate of a message can come as long as its topic keeps
// it (a consumer group that lost its offsets reads the topic again) or its
// producer's outbox keeps its row (a relay that finds the broker lost
// records publishes the outbox again, pkg/relay). Each must outlast the
// one before it — Outbox and Topics, Journal, Sagas, Steps — and every
// service of a system runs with the same values (`sagabox up` hands them
// its environment; docker-compose.yml sets them once for all).
type Retention struct {
	// Outbox: outbox rows, published as they are inserted, are kept this
	// long (OUTBOX_RETENTION, 24h).
	Outbox time.Duration
	// Topics is the retention.ms of the topics the service creates
	// (KAFKA_TOPIC_RETENTION, 2d).
	Topics time.Duration
	// Journal: consumed-message journal entries, which make a redelivered
	// message a no-op (CONSUMED_RETENTION, 3d). It must outlast Topics and
	// Outbox: a duplicate older than its entry is applied again, and only
	// what it answers keeps it harmless (a participant's step record, a
	// saga's state).
	Journal time.Duration
	// Sagas: an ended saga, its history and its business record (the
	// order) are kept this long after it ended (SAGA_RETENTION, 7d; the
	// orchestrator's): found by the operator API and the console until
	// then, 404 after; an order can be cancelled until then. It must
	// outlast Journal: a reply to a saga that is gone would otherwise wait
	// as if early, then be parked.
	Sagas time.Duration
	// Parked: parked messages an operator replayed (PARKED_RETENTION,
	// 30d); those still waiting for one are never removed.
	Parked time.Duration
	// Steps: a participant's step records, its barrier, after their last
	// message (STEP_RECORD_RETENTION, 14d). It must outlast Sagas: once a
	// record is gone, a REQUEST of its saga would be done again, and a
	// CANCEL — the compensation of a saga still running, the cancellation
	// of an order — would find nothing to undo.
	Steps time.Duration
}

// DefaultRetention is the Retention of a service whose environment says
// nothing.
func DefaultRetention() Retention {
	const day = 24 * time.Hour
	return Retention{Outbox: day, Topics: 2 * day, Journal: 3 * day, Sagas: 7 * day, Parked: 30 * day, Steps: 14 * day}
}

// load reads the retention variables and checks that each outlasts what
// it must.
func (r *Retention) load(getenv func(string) string) error {
	var errs []error
	for key, dst := range map[string]*time.Duration{
		"OUTBOX_RETENTION": &r.Outbox, "KAFKA_TOPIC_RETENTION": &r.Topics, "CONSUMED_RETENTION": &r.Journal,
		"SAGA_RETENTION": &r.Sagas, "PARKED_RETENTION": &r.Parked, "STEP_RECORD_RETENTION": &r.Steps,
	} {
		if v := getenv(key); v != "" {
			d, err := ParseRetention(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", key, v, err))
				continue
			}
			*dst = d
		}
	}
	if len(errs) == 0 {
		if r.Journal <= max(r.Topics, r.Outbox) {
			errs = append(errs, fmt.Errorf("CONSUMED_RETENTION (%s) must outlast KAFKA_TOPIC_RETENTION (%s) and OUTBOX_RETENTION (%s): a duplicate may come as long as either keeps its message",
				r.Journal, r.Topics, r.Outbox))
		}
		if r.Sagas <= r.Journal {
			errs = append(errs, fmt.Errorf("SAGA_RETENTION (%s) must outlast CONSUMED_RETENTION (%s): a reply to a saga that is gone would wait as if early, then be parked",
				r.Sagas, r.Journal))
		}
		if r.Steps <= r.Sagas {
			errs = append(errs, fmt.Errorf("STEP_RECORD_RETENTION (%s) must outlast SAGA_RETENTION (%s): a request, a compensation or an order's cancellation may come as long as its saga or order is kept",
				r.Steps, r.Sagas))
		}
	}
	return errors.Join(errs...)
}

// ParseRetention reads a positive duration: Go's (90m, 24h, 1h30m) or a
// whole number of days (30d).
func ParseRetention(v string) (time.Duration, error) {
	var (
		d   time.Duration
		err error
	)
	if days, ok := strings.CutSuffix(strings.TrimSpace(v), "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		d = time.Duration(n) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(v)
	}
	if err != nil || d <= 0 {
		return 0, errors.New("want a positive duration like 36h or 30d")
	}
	return d, nil
}

// Pruner removes rows that only grow: within tx, up to limit of those
// older than retention, returning how many.
type Pruner struct {
	Name      string        // what it removes, for the log: "outbox"
	Retention time.Duration // 0: nothing is removed
	Prune     func(ctx context.Context, tx pgx.Tx, retention time.Duration, limit int) (int, error)
}

// pruneBatch is how many rows one pruning transaction removes at most:
// small enough that the hot path beside it does not feel it.
const pruneBatch = 1000

// messagingPruners are the pruners of the tables every service has: the
// outbox, the journal, the replayed parked messages.
func messagingPruners(r Retention) []Pruner {
	return []Pruner{
		{Name: "outbox", Retention: r.Outbox, Prune: func(ctx context.Context, tx pgx.Tx, ret time.Duration, limit int) (int, error) {
			n, err := outbox.Prune(ctx, tx, ret, limit)
			return int(n), err
		}},
		{Name: "consumed-message journal", Retention: r.Journal, Prune: func(ctx context.Context, tx pgx.Tx, ret time.Duration, limit int) (int, error) {
			n, err := outbox.PruneJournal(ctx, tx, ret, limit)
			return int(n), err
		}},
		{Name: "replayed parked messages", Retention: r.Parked, Prune: func(ctx context.Context, tx pgx.Tx, ret time.Duration, limit int) (int, error) {
			n, err := consumer.PruneReplayed(ctx, tx, ret, limit)
			return int(n), err
		}},
	}
}

// RunLifecycle runs pruners until ctx ends: each round, every pruner a
// batch per transaction until it has nothing left to remove, then a pause
// of a tenth of the shortest retention (between one second and a minute).
// A failed round (the database away) is logged and tried again.
func RunLifecycle(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, pruners []Pruner) error {
	every := time.Minute
	for _, p := range pruners {
		if p.Retention > 0 {
			every = min(every, max(p.Retention/10, time.Second))
		}
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for _, p := range pruners {
			if p.Retention <= 0 {
				continue
			}
			total, err := pruneAll(ctx, pool, p)
			if err != nil && ctx.Err() == nil {
				log.WarnContext(ctx, "pruning failed", "what", p.Name, "err", err)
			}
			if total > 0 {
				log.DebugContext(ctx, "pruned", "what", p.Name, "rows", total, "retention", p.Retention)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// pruneAll runs p in batches until a batch removes less than a full one.
func pruneAll(ctx context.Context, pool *pgxpool.Pool, p Pruner) (int, error) {
	total := 0
	for {
		var n int
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			n, err = p.Prune(ctx, tx, p.Retention, pruneBatch)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}
