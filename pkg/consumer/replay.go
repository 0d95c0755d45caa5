package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sagabox/sagabox/pkg/outbox"
)

// Parked message statuses.
const (
	ParkedWaiting  = "PARKED"   // waits for an operator
	ParkedReplayed = "REPLAYED" // replayed: applied, or found already applied
)

// Replay outcomes.
const (
	OutcomeApplied   = "applied"   // the handler applied it now
	OutcomeDuplicate = "duplicate" // the journal had it: applied before, nothing done
)

// Errors of ListParked and Replay.
var (
	ErrParkedNotFound = errors.New("parked message not found")
	ErrReplayed       = errors.New("parked message already replayed")
)

// Parked is a row of the parkedmessage table. Key and the header values
// hold the record's bytes as they came (Go strings of any bytes); as JSON,
// bytes that are not UTF-8 show as U+FFFD.
type Parked struct {
	ID        int64      `json:"id"`
	Consumer  string     `json:"consumer"`
	Topic     string     `json:"topic"`
	TopicID   *uuid.UUID `json:"topicId,omitempty"`
	Partition int32      `json:"partition"`
	Offset    int64      `json:"offset"`
	// EventID is the record's "id" header when it is a UUID.
	EventID        *uuid.UUID        `json:"eventId,omitempty"`
	Key            string            `json:"key"`
	Value          []byte            `json:"-"`
	Headers        map[string]string `json:"headers"`
	Error          string            `json:"error"`
	ParkedAt       time.Time         `json:"parkedAt"`
	Status         string            `json:"status"`
	ReplayAttempts int               `json:"replayAttempts"`
	ReplayedAt     *time.Time        `json:"replayedAt,omitempty"`
	ReplayedBy     string            `json:"replayedBy,omitempty"`
	ReplayReason   string            `json:"replayReason,omitempty"`
	ReplayOutcome  string            `json:"replayOutcome,omitempty"`
}

// Message rebuilds the consumed message of p.
func (p Parked) Message() (Message, error) {
	r := Message{Topic: p.Topic, Partition: p.Partition, Offset: p.Offset, Key: p.Key, Value: p.Value,
		Headers: p.Headers, EventType: p.Headers["eventType"]}
	raw, ok := p.Headers["id"]
	if !ok {
		return r, Permanent(errors.New(`message has no "id" header: it cannot be deduplicated, so it is never replayed`))
	}
	if err := r.ID.UnmarshalText([]byte(raw)); err != nil {
		return r, Permanent(fmt.Errorf(`message header "id" %q is not a UUID: %w`, raw, err))
	}
	return r, nil
}

// Querier is what reads of parked messages need: a pool or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ParkedFilter selects parked messages, oldest first.
type ParkedFilter struct {
	// Status is ParkedWaiting, ParkedReplayed or "" for both.
	Status string
	// After skips messages up to this id (paging).
	After int64
	// Limit bounds the page (1 to MaxParkedPage).
	Limit int
}

// MaxParkedPage is the largest page ListParked returns.
const MaxParkedPage = 500

const parkedColumns = `id, consumer, topic, topic_id, partition, "offset", event_id, key, value, header_keys, header_values,
	error, parked_at, status, replay_attempts, replayed_at, coalesce(replayed_by, ''), coalesce(replay_reason, ''),
	coalesce(replay_outcome, '')`

func scanParked(row pgx.CollectableRow) (Parked, error) {
	var (
		p            Parked
		key          []byte
		hkeys, hvals [][]byte
	)
	err := row.Scan(&p.ID, &p.Consumer, &p.Topic, &p.TopicID, &p.Partition, &p.Offset, &p.EventID, &key, &p.Value,
		&hkeys, &hvals, &p.Error, &p.ParkedAt,
		&p.Status, &p.ReplayAttempts, &p.ReplayedAt, &p.ReplayedBy, &p.ReplayReason, &p.ReplayOutcome)
	if err != nil {
		return p, err
	}
	if len(hkeys) != len(hvals) {
		return p, fmt.Errorf("parked message %d: %d header names for %d values", p.ID, len(hkeys), len(hvals))
	}
	p.Key = string(key)
	p.Headers = make(map[string]string, len(hkeys))
	for i := range hkeys {
		p.Headers[string(hkeys[i])] = string(hvals[i])
	}
	return p, nil
}

// ListParked returns the parked messages that match f, oldest first.
func ListParked(ctx context.Context, q Querier, f ParkedFilter) ([]Parked, error) {
	const sql = `SELECT ` + parkedColumns + ` FROM parkedmessage
		WHERE id > $1 AND ($2 = '' OR status = $2) ORDER BY id LIMIT $3`
	if f.Limit < 1 || f.Limit > MaxParkedPage {
		return nil, fmt.Errorf("list parked messages: limit %d not in 1..%d", f.Limit, MaxParkedPage)
	}
	rows, err := q.Query(ctx, sql, f.After, f.Status, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list parked messages: %w", err)
	}
	ps, err := pgx.CollectRows(rows, scanParked)
	if err != nil {
		return nil, fmt.Errorf("list parked messages: %w", err)
	}
	return ps, nil
}

// Audit writes the record of an operator's replay within its transaction
// (the services write an outbox event).
type Audit func(ctx context.Context, tx pgx.Tx, p Parked) error

// Replay applies parked message id the way the consumer would have: in one
// transaction it journals the message id and runs the handler — or, if the
// journal already has it, does nothing more — marks the row REPLAYED by
// whom and why with the outcome, and calls audit. The journal makes a
// replay apply at most once, however often it is asked for; the row lock
// serialises concurrent replays of one message. A message whose handler
// fails again stays PARKED, its error and attempt count updated, and the
// error is returned (wrapped in the handler's error).
func (c *Consumer) Replay(ctx context.Context, id int64, by, reason string, audit Audit) (Parked, error) {
	const lock = `SELECT ` + parkedColumns + ` FROM parkedmessage WHERE id = $1 AND consumer = $2 FOR UPDATE`
	const done = `UPDATE parkedmessage SET status = 'REPLAYED', replay_attempts = replay_attempts + 1,
		replayed_at = now(), replayed_by = $2, replay_reason = $3, replay_outcome = $4 WHERE id = $1
		RETURNING replay_attempts, replayed_at`
	var p Parked
	var handlerErr error
	err := pgx.BeginFunc(ctx, c.cfg.Pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, lock, id, c.cfg.Group)
		if err != nil {
			return err
		}
		p, err = pgx.CollectExactlyOneRow(rows, scanParked)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("replay parked message %d: %w", id, ErrParkedNotFound)
		}
		if err != nil {
			return err
		}
		if p.Status == ParkedReplayed {
			return fmt.Errorf("replay parked message %d: %w (%s by %s)", id, ErrReplayed, p.ReplayOutcome, p.ReplayedBy)
		}
		m, err := p.Message()
		if err != nil {
			handlerErr = err
			return err
		}
		first, err := outbox.MarkConsumed(ctx, tx, c.cfg.Group, m.ID)
		if err != nil {
			return err
		}
		p.ReplayOutcome = OutcomeDuplicate
		if first {
			p.ReplayOutcome = OutcomeApplied
			if err := c.cfg.Handler(ctx, tx, m); err != nil {
				handlerErr = err
				return err
			}
		}
		p.Status, p.ReplayedBy, p.ReplayReason = ParkedReplayed, by, reason
		if err := tx.QueryRow(ctx, done, id, by, reason, p.ReplayOutcome).Scan(&p.ReplayAttempts, &p.ReplayedAt); err != nil {
			return err
		}
		return audit(ctx, tx, p)
	})
	if handlerErr != nil {
		const failed = `UPDATE parkedmessage SET error = $2, replay_attempts = replay_attempts + 1 WHERE id = $1`
		if _, uerr := c.cfg.Pool.Exec(ctx, failed, id, cleanText("replay by "+by+": "+handlerErr.Error())); uerr != nil {
			c.log.WarnContext(ctx, "record failed replay", "parked_id", id, "err", uerr)
		}
		return p, fmt.Errorf("replay parked message %d: %w", id, handlerErr)
	}
	if err != nil {
		return p, err
	}
	c.log.InfoContext(ctx, "parked message replayed", "parked_id", id, "event_id", p.Headers["id"],
		"outcome", p.ReplayOutcome, "by", by)
	return p, nil
}

// Execer is what PruneReplayed needs: a pool or a transaction.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// PruneReplayed deletes up to limit parked messages that an operator
// replayed longer than retention ago, and returns how many. Messages still
// waiting for an operator are never removed.
func PruneReplayed(ctx context.Context, db Execer, retention time.Duration, limit int) (int64, error) {
	const q = `DELETE FROM parkedmessage WHERE id = ANY(ARRAY(
		SELECT id FROM parkedmessage WHERE status = 'REPLAYED' AND replayed_at < now() - make_interval(secs => $1) LIMIT $2))`
	tag, err := db.Exec(ctx, q, retention.Seconds(), limit)
	if err != nil {
		return 0, fmt.Errorf("prune replayed parked messages: %w", err)
	}
	return tag.RowsAffected(), nil
}
