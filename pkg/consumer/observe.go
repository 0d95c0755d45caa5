package consumer

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Outcome is what became of a record, or of one failed attempt at it, as
// reported to Config.Observer.
type Outcome uint8

// Outcomes reported to Config.Observer.
const (
	// RecordApplied: the journal and the handler's effect committed.
	RecordApplied Outcome = iota + 1
	// RecordDuplicate: the journal already had the message; it was skipped.
	RecordDuplicate
	// RecordRetried: an attempt failed and the message will be tried again.
	RecordRetried
	// RecordParked: the message was stored in parkedmessage with its error.
	RecordParked
	// RecordEarly: the message arrived ahead of the state it answers (see
	// ErrEarly) and is waited for; reported once per message.
	RecordEarly
)

func (o Outcome) String() string {
	switch o {
	case RecordApplied:
		return "applied"
	case RecordDuplicate:
		return "duplicate"
	case RecordRetried:
		return "retried"
	case RecordParked:
		return "parked"
	case RecordEarly:
		return "early"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Observer is told what became of every record the consumer handles: once
// per record with Applied, Duplicate or Parked, after the transaction that
// decided it ended, once per failed attempt that is retried, and once per
// record that arrived ahead of the state it answers (Early). It is
// called from the partition workers, concurrently: it must be fast and must
// not block (incrementing a counter is what it is for).
type Observer func(topic string, o Outcome)

func (c *Consumer) observe(topic string, o Outcome) {
	if c.cfg.Observer != nil {
		c.cfg.Observer(topic, o)
	}
}

// CountParked returns how many messages of every consumer wait in the
// parkedmessage table (status PARKED).
func CountParked(ctx context.Context, q Querier) (int64, error) {
	const sql = `SELECT count(*) FROM parkedmessage WHERE status = 'PARKED'`
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return 0, fmt.Errorf("count parked messages: %w", err)
	}
	n, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, fmt.Errorf("count parked messages: %w", err)
	}
	return n, nil
}
