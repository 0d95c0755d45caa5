// Package outbox implements the transactional outbox as every service uses
// it: Write inserts messages into the service's outbox table inside the
// caller's transaction, the journal (MarkConsumed) makes consumers
// idempotent, and Prune removes published rows after a retention period.
// Publishing the rows from the WAL to Kafka is Debezium's job, or, without
// Docker, package relay's.
//
// The outbox table is named "outboxevent" in every service database and has
// EventRouter's default columns (id, aggregatetype, aggregateid, type,
// payload) plus traceparent/tracestate, which carry the W3C trace context of
// the writer into Kafka headers.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/propagation"
)

// Event is one message to publish.
type Event struct {
	// ID identifies the message; it becomes the Kafka header "id" and is the
	// key consumers deduplicate on. Write fills a random one when zero.
	ID uuid.UUID
	// AggregateType routes the message: the connector turns it into the
	// topic ("credit-approval" -> "credit-approval.request").
	AggregateType string
	// AggregateID becomes the Kafka key. All messages of one saga carry the
	// saga id, so they land on one partition, in order.
	AggregateID string
	// Type becomes the Kafka header "eventType".
	Type string
	// Payload is the message body, a JSON document.
	Payload json.RawMessage
}

// Write inserts events into the outbox table within tx. It never begins or
// commits: the events are published if and only if tx commits, and in commit
// order. The W3C trace context of ctx (if any) is stored with every event,
// always in the W3C Trace Context format (no global propagator is consulted).
func Write(ctx context.Context, tx pgx.Tx, events ...Event) error {
	if len(events) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	if err := Queue(ctx, b, events...); err != nil {
		return err
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write %d outbox events (first %s): %w", len(events), events[0].Type, err)
	}
	return nil
}

// Queue queues the inserts of Write on b, for a caller that sends several
// statements of its transaction in one round trip (tx.SendBatch); the
// contract is Write's once b is sent within a transaction. An error of an
// insert is returned by the batch's Close.
func Queue(ctx context.Context, b *pgx.Batch, events ...Event) error {
	const q = `INSERT INTO outboxevent (id, aggregatetype, aggregateid, type, payload, traceparent, tracestate)
		VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), NULLIF($7, ''))`
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	for _, e := range events {
		if e.ID == uuid.Nil {
			// Time-ordered: the journals' indexes (consumer, event id)
			// take new messages at their end.
			e.ID = uuid.Must(uuid.NewV7())
		}
		if !json.Valid(e.Payload) {
			return fmt.Errorf("write outbox event %s (%s): payload is not valid JSON", e.ID, e.Type)
		}
		b.Queue(q, e.ID, e.AggregateType, e.AggregateID, e.Type, string(e.Payload),
			carrier.Get("traceparent"), carrier.Get("tracestate"))
	}
	return nil
}

// MarkConsumed records in tx that the message eventID has been processed by
// consumer. It reports false when consumer already recorded it: the caller
// must then skip its effect. The journal is keyed by (consumer, event id), so
// two consumers of one message in the same database each apply it once. Because the record commits with the
// effect, a redelivered message is applied at most once; a concurrent
// duplicate blocks on the primary key until the first transaction ends.
func MarkConsumed(ctx context.Context, tx pgx.Tx, consumer string, eventID uuid.UUID) (first bool, err error) {
	const q = `INSERT INTO consumedmessage (event_id, consumer) VALUES ($1, $2) ON CONFLICT (consumer, event_id) DO NOTHING`
	tag, err := tx.Exec(ctx, q, eventID, consumer)
	if err != nil {
		return false, fmt.Errorf("journal message %s: %w", eventID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// MarkConsumedAll is MarkConsumed for several messages of consumer in one
// statement: it returns the ids recorded now for the first time (an id given
// twice is first once); the others were recorded before and their effect
// must be skipped.
func MarkConsumedAll(ctx context.Context, tx pgx.Tx, consumer string, eventIDs []uuid.UUID) (map[uuid.UUID]bool, error) {
	const q = `INSERT INTO consumedmessage (event_id, consumer) SELECT unnest($1::uuid[]), $2
		ON CONFLICT (consumer, event_id) DO NOTHING RETURNING event_id`
	rows, err := tx.Query(ctx, q, eventIDs, consumer)
	if err != nil {
		return nil, fmt.Errorf("journal %d messages: %w", len(eventIDs), err)
	}
	first := make(map[uuid.UUID]bool, len(eventIDs))
	var id uuid.UUID
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error { first[id] = true; return nil }); err != nil {
		return nil, fmt.Errorf("journal %d messages: %w", len(eventIDs), err)
	}
	return first, nil
}

// Execer is the part of a pool or connection Prune needs.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Prune deletes up to limit outbox rows older than retention and returns
// how many. Rows are published from the WAL as they are inserted, so
// deleting them later loses nothing; the retention only bounds the table,
// and what a relay that lost the broker's records can publish again
// (pkg/relay). Deletes never reach Kafka (the EventRouter ignores them).
func Prune(ctx context.Context, db Execer, retention time.Duration, limit int) (int64, error) {
	const q = `DELETE FROM outboxevent WHERE ctid = ANY(ARRAY(
		SELECT ctid FROM outboxevent WHERE created_at < now() - make_interval(secs => $1) LIMIT $2))`
	tag, err := db.Exec(ctx, q, retention.Seconds(), limit)
	if err != nil {
		return 0, fmt.Errorf("prune outbox: %w", err)
	}
	return tag.RowsAffected(), nil
}

// PruneJournal deletes up to limit entries of the consumed-message journal
// older than retention and returns how many. The journal makes a
// redelivered message a no-op; a duplicate can arrive as long as the topic
// keeps the message or its producer's outbox keeps the row a relay may
// publish again, so retention must outlast both (platform.Retention checks
// it). A duplicate older than that finds no entry and is applied again:
// what it answers decides (a participant's barrier answers a repeated
// request with the first answer, a saga finds its reply late).
func PruneJournal(ctx context.Context, db Execer, retention time.Duration, limit int) (int64, error) {
	const q = `DELETE FROM consumedmessage WHERE ctid = ANY(ARRAY(
		SELECT ctid FROM consumedmessage WHERE consumed_at < now() - make_interval(secs => $1) LIMIT $2))`
	tag, err := db.Exec(ctx, q, retention.Seconds(), limit)
	if err != nil {
		return 0, fmt.Errorf("prune consumed-message journal: %w", err)
	}
	return tag.RowsAffected(), nil
}
