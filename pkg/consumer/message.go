package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Message is a consumed record with the headers the outbox relay sets.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	// Key is the record key: the saga id for every message of this system.
	Key string
	// Value is the payload JSON.
	Value []byte
	// ID is the outbox event id (header "id"), the deduplication key.
	ID uuid.UUID
	// EventType is the header "eventType".
	EventType string
	Headers   map[string]string
}

// SagaID returns the record key as a saga id. A key that is not one is a
// permanent error: the message cannot belong to any saga.
func (m Message) SagaID() (uuid.UUID, error) {
	id, err := uuid.Parse(m.Key)
	if err != nil {
		return uuid.Nil, Permanent(fmt.Errorf("%s record key %q is not a saga id: %w", m.Topic, m.Key, err))
	}
	return id, nil
}

// Decode unmarshals the payload into v. A payload that does not decode is a
// permanent error.
func (m Message) Decode(v any) error {
	if err := json.Unmarshal(m.Value, v); err != nil {
		return Permanent(fmt.Errorf("decode %s payload: %w", m.Topic, err))
	}
	return nil
}

// Handler applies one message inside tx. It must not commit or roll back tx.
// Returning an error rolls tx back; wrap it with Permanent when retrying can
// never help (the message is then parked).
type Handler func(ctx context.Context, tx pgx.Tx, m Message) error

// ErrPermanent marks errors that retrying will not fix.
var ErrPermanent = errors.New("permanent failure")

type permanent struct{ err error }

func (p permanent) Error() string        { return p.err.Error() }
func (p permanent) Unwrap() []error      { return []error{p.err, ErrPermanent} }
func (p permanent) Is(target error) bool { return target == ErrPermanent }

// Permanent wraps err so that the consumer parks the message instead of
// retrying it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// ErrEarly marks a message that arrived ahead of the state it answers: the
// transaction that wrote that state (say, the saga a reply is for) has
// committed elsewhere, but is not visible to the handler's reads yet.
// Change data capture publishes a commit as soon as it is in the WAL, which
// can be before the committing session has made it visible to others, and
// the round trip through Kafka can fit in between. Such a message is tried
// again every few milliseconds (holding back its partition) until it fits,
// and parked only after Config.EarlyWait.
var ErrEarly = errors.New("message ahead of the state it answers")

type early struct{ err error }

func (e early) Error() string        { return e.err.Error() }
func (e early) Unwrap() []error      { return []error{e.err, ErrEarly} }
func (e early) Is(target error) bool { return target == ErrEarly }

// Early wraps err, a handler's finding that its message answers a state it
// cannot see yet, so that the consumer tries the message again shortly
// (see ErrEarly).
func Early(err error) error {
	if err == nil {
		return nil
	}
	return early{err}
}

// decode reads the headers the relay sets. A record without a valid "id"
// header cannot be deduplicated and is refused; so is a record larger than
// maxBytes, whose value no handler gets to read (its headers are kept, so
// that it can be parked and replayed).
func decode(r *kgo.Record, maxBytes int) (Message, error) {
	m := Message{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
		Key: string(r.Key), Value: r.Value,
		Headers: make(map[string]string, len(r.Headers)),
	}
	for _, h := range r.Headers {
		m.Headers[h.Key] = string(h.Value)
	}
	m.EventType = m.Headers["eventType"]
	raw, ok := m.Headers["id"]
	if !ok {
		return m, errors.New(`record has no "id" header`)
	}
	id, err := uuid.Parse(raw)
	if err != nil {
		return m, fmt.Errorf(`record header "id" %q is not a UUID: %w`, raw, err)
	}
	m.ID = id
	return m, checkSize(r, maxBytes)
}

// Infrastructure reports a failure of the infrastructure rather than of the
// message: the database cannot be reached or is shutting down, a connection
// broke, a deadlock or serialization failure, a lock or resource limit.
// Such a failure lasts as long as the outage does; the consumer retries it
// without limit and never parks the message for it.
func Infrastructure(err error) bool {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", // connection exception
			"53", // insufficient resources
			"57", // operator intervention: admin/crash shutdown, cannot connect now
			"58": // system error (I/O)
			return true
		}
		switch pgErr.Code {
		case "40001", "40P01", "55P03": // serialization failure, deadlock, lock not available
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, context.DeadlineExceeded)
}
