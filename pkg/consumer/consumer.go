// Package consumer runs the Kafka side of an idempotent, transactional
// message handler: it polls with franz-go, and for every record opens a
// database transaction in which it journals the message id (pkg/outbox
// MarkConsumed) and calls the handler; the Kafka offset is committed only
// after that transaction committed. A redelivered message is skipped by the
// journal. Transient failures are retried with capped exponential backoff;
// a message that can never succeed is parked in the parkedmessage table with
// its error — never dropped, never blocking its partition forever.
//
// Records of one partition are handled strictly in order; partitions are
// handled concurrently.
package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sagabox/sagabox/pkg/outbox"
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

// Config configures a Consumer. Zero durations take the defaults.
type Config struct {
	// Group is the Kafka consumer group and the journal's consumer name.
	Group string
	// Topics to consume.
	Topics []string
	// Brokers is the Kafka bootstrap address list.
	Brokers []string
	// Pool is the service database holding the journal and parked messages.
	Pool *pgxpool.Pool
	// Handler applies messages.
	Handler Handler
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between attempts of a
	// failing message (defaults 50ms and 5s).
	MinBackoff, MaxBackoff time.Duration
	// MaxAttempts is how many times a message failing with a non-permanent
	// error is tried before it is parked (default 20). Failures to reach the
	// database are retried without limit: parking needs the database too.
	MaxAttempts int
	// TracerProvider receives the processing spans; nil means the global one.
	TracerProvider trace.TracerProvider
	// ClientOpts are extra franz-go options (tests use them).
	ClientOpts []kgo.Opt
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 50 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 20
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
}

// Consumer consumes Config.Topics until its context ends.
type Consumer struct {
	cfg    Config
	client *kgo.Client
	log    *slog.Logger
	tracer trace.Tracer
}

// New creates the Kafka client of a consumer; it does not connect yet.
func New(cfg Config) (*Consumer, error) {
	cfg.defaults()
	if cfg.Group == "" || len(cfg.Topics) == 0 || len(cfg.Brokers) == 0 || cfg.Pool == nil || cfg.Handler == nil {
		return nil, errors.New("consumer: Group, Topics, Brokers, Pool and Handler are required")
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(500 * time.Millisecond),
		kgo.BlockRebalanceOnPoll(),
		kgo.AllowAutoTopicCreation(),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, _ map[string][]int32) {
			if err := cl.CommitMarkedOffsets(ctx); err != nil {
				cfg.Logger.WarnContext(ctx, "commit offsets on revoke failed", "group", cfg.Group, "err", err)
			}
		}),
	}
	client, err := kgo.NewClient(append(opts, cfg.ClientOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("create kafka consumer %s: %w", cfg.Group, err)
	}
	return &Consumer{cfg: cfg, client: client, log: cfg.Logger, tracer: cfg.TracerProvider.Tracer("github.com/sagabox/sagabox/pkg/consumer")}, nil
}

// Run polls and handles records until ctx ends, then commits the offsets of
// the handled records, leaves the group and returns nil. Records in flight
// when ctx ends are not committed: they are redelivered later and skipped
// by the journal if their transaction had committed.
func (c *Consumer) Run(ctx context.Context) error {
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := c.client.CommitMarkedOffsets(cctx); err != nil {
			c.log.WarnContext(cctx, "commit offsets at shutdown failed", "group", c.cfg.Group, "err", err)
		}
		// Leaving the group is a rebalance, which BlockRebalanceOnPoll holds
		// back until allowed.
		c.client.AllowRebalance()
		c.client.Close()
	}()
	for {
		fetches := c.client.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			c.log.WarnContext(ctx, "kafka fetch error", "topic", topic, "partition", p, "err", err)
		})
		var wg sync.WaitGroup
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, r := range p.Records {
					if !c.process(ctx, r) {
						return // shutting down
					}
					c.client.MarkCommitRecords(r)
				}
			}()
		})
		wg.Wait()
		c.client.AllowRebalance()
	}
}

// process handles one record until it is applied, skipped as a duplicate or
// parked. It returns false only when ctx ended first.
func (c *Consumer) process(ctx context.Context, r *kgo.Record) bool {
	m, decodeErr := decode(r)
	ctx, span := c.startSpan(ctx, r, m)
	defer span.End()
	log := c.log.With("topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "event_id", m.ID, "event_type", m.EventType)

	if decodeErr != nil {
		return c.park(ctx, log, span, m, decodeErr)
	}
	backoff := c.cfg.MinBackoff
	for attempt := 1; ; attempt++ {
		dup, err := c.apply(ctx, m)
		switch {
		case err == nil:
			if dup {
				log.InfoContext(ctx, "duplicate message skipped")
				span.SetAttributes(attribute.Bool("messaging.duplicate", true))
			}
			return true
		case ctx.Err() != nil:
			return false
		case errors.Is(err, ErrPermanent):
			return c.park(ctx, log, span, m, err)
		case attempt >= c.cfg.MaxAttempts && !unreachable(err):
			return c.park(ctx, log, span, m, fmt.Errorf("gave up after %d attempts: %w", attempt, err))
		}
		log.WarnContext(ctx, "message failed, retrying", "attempt", attempt, "backoff", backoff, "err", err)
		span.AddEvent("retry", trace.WithAttributes(attribute.Int("attempt", attempt), attribute.String("error", err.Error())))
		if !sleep(ctx, jitter(backoff)) {
			return false
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

// apply runs journal + handler in one transaction; dup reports a message
// that was already applied.
func (c *Consumer) apply(ctx context.Context, m Message) (dup bool, err error) {
	err = pgx.BeginFunc(ctx, c.cfg.Pool, func(tx pgx.Tx) error {
		first, err := outbox.MarkConsumed(ctx, tx, c.cfg.Group, m.ID)
		if err != nil {
			return err
		}
		if !first {
			dup = true
			return nil
		}
		return c.cfg.Handler(ctx, tx, m)
	})
	return dup, err
}

// park stores the message with its error, retrying until the database takes
// it (or ctx ends), so that its offset can be committed without losing it.
func (c *Consumer) park(ctx context.Context, log *slog.Logger, span trace.Span, m Message, cause error) bool {
	log.ErrorContext(ctx, "message parked", "err", cause)
	span.RecordError(cause)
	span.SetStatus(codes.Error, "message parked")
	const q = `INSERT INTO parkedmessage (consumer, topic, partition, "offset", key, value, headers, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (consumer, topic, partition, "offset") DO NOTHING`
	headers, _ := json.Marshal(m.Headers)
	backoff := c.cfg.MinBackoff
	for {
		_, err := c.cfg.Pool.Exec(ctx, q, c.cfg.Group, m.Topic, m.Partition, m.Offset, m.Key, m.Value, headers, cause.Error())
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		log.WarnContext(ctx, "parking message failed, retrying", "err", err)
		if !sleep(ctx, jitter(backoff)) {
			return false
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

func (c *Consumer) startSpan(ctx context.Context, r *kgo.Record, m Message) (context.Context, trace.Span) {
	ctx = otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(m.Headers))
	return c.tracer.Start(ctx, r.Topic+" process",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", r.Topic),
			attribute.String("messaging.consumer.group.name", c.cfg.Group),
			attribute.String("messaging.kafka.message.key", string(r.Key)),
			attribute.String("messaging.message.id", m.ID.String()),
			attribute.Int("messaging.destination.partition.id", int(r.Partition)),
			attribute.Int64("messaging.kafka.offset", r.Offset),
			attribute.String("event.type", m.EventType),
		))
}

// decode reads the headers the relay sets. A record without a valid "id"
// header cannot be deduplicated and is refused.
func decode(r *kgo.Record) (Message, error) {
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
	return m, nil
}

// unreachable reports errors of getting to the database at all, which no
// number of attempts makes permanent.
func unreachable(err error) bool {
	var connectErr *pgconn.ConnectError
	return errors.As(err, &connectErr) || pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
