package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Querier is what the status reads need: a pool, a connection or a
// transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Backlog is what the outbox table of a database holds: every row stays
// until Prune deletes it after the retention.
type Backlog struct {
	// Rows waiting to be pruned (published already, or being published):
	// counted up to ExactRows, the planner's estimate above (a busy
	// system's outbox holds a day of messages: counting them would read
	// them all).
	Rows int64 `json:"rows"`
	// Oldest is the creation time of the oldest row; zero when empty.
	Oldest time.Time `json:"oldest,omitzero"`
}

// ExactRows is how many outbox rows ReadBacklog counts before it takes
// the planner's estimate.
const ExactRows = 10_000

// ReadBacklog reads the outbox backlog of the database q reads, touching
// at most ExactRows rows (the oldest through the created_at index).
func ReadBacklog(ctx context.Context, q Querier) (Backlog, error) {
	const sql = `SELECT (SELECT count(*) FROM (SELECT 1 FROM outboxevent LIMIT $1) few),
			(SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'outboxevent'::regclass),
			(SELECT min(created_at) FROM outboxevent)`
	rows, err := q.Query(ctx, sql, ExactRows)
	if err != nil {
		return Backlog{}, fmt.Errorf("read outbox backlog: %w", err)
	}
	b, err := pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) (Backlog, error) {
		var (
			b        Backlog
			estimate int64
			oldest   *time.Time
		)
		err := r.Scan(&b.Rows, &estimate, &oldest)
		if b.Rows >= ExactRows {
			b.Rows = max(b.Rows, estimate)
		}
		if oldest != nil {
			b.Oldest = *oldest
		}
		return b, err
	})
	if err != nil {
		return Backlog{}, fmt.Errorf("read outbox backlog: %w", err)
	}
	return b, nil
}

// Slot is a logical replication slot of a database, the position from
// which Debezium or the relay reads its outbox from the WAL.
type Slot struct {
	Name   string `json:"name"`
	Active bool   `json:"active"` // a walsender (Debezium, the relay) is reading it
	// LagBytes is how far the reader is behind the WAL:
	// pg_current_wal_lsn() minus the slot's confirmed_flush_lsn.
	LagBytes int64 `json:"lagBytes"`
	// RetainedBytes is the WAL the server keeps for the slot:
	// pg_current_wal_lsn() minus its restart_lsn.
	RetainedBytes int64 `json:"retainedBytes"`
}

// Slots returns the logical replication slots of the database q reads,
// by name. pg_replication_slots is readable by every role.
func Slots(ctx context.Context, q Querier) ([]Slot, error) {
	const sql = `SELECT slot_name::text, active,
			coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint,
			coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint
		FROM pg_replication_slots
		WHERE slot_type = 'logical' AND database = current_database()
		ORDER BY slot_name`
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("read replication slots: %w", err)
	}
	slots, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Slot, error) {
		var s Slot
		err := r.Scan(&s.Name, &s.Active, &s.LagBytes, &s.RetainedBytes)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("read replication slots: %w", err)
	}
	return slots, nil
}

// Age returns how long ago the oldest row was written; zero when empty.
func (b Backlog) Age() time.Duration {
	if b.Oldest.IsZero() {
		return 0
	}
	return time.Since(b.Oldest)
}
