package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sagabox/sagabox/pkg/outbox"
)

// worker handles the records of one partition, in order, until cancelled.
// The poll loop queues records with push; when the queue reaches the
// consumer's QueueLimit the partition is paused at the client (its buffered
// records are dropped there and fetched again later), and the worker
// resumes it once it has caught up.
type worker struct {
	c      *Consumer
	cl     *kgo.Client
	tp     topicPartition
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{}

	mu      sync.Mutex
	queue   []*kgo.Record
	paused  bool
	topicID [16]byte // the id of the topic the queued records came from (zero: unknown)
}

func newWorker(c *Consumer, cl *kgo.Client, tp topicPartition) *worker {
	ctx, cancel := context.WithCancel(context.Background())
	return &worker{c: c, cl: cl, tp: tp, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), wake: make(chan struct{}, 1)}
}

// push queues records of the topic whose id is topicID; it never blocks.
func (w *worker) push(topicID [16]byte, recs []*kgo.Record) {
	w.mu.Lock()
	if topicID != ([16]byte{}) {
		w.topicID = topicID
	}
	w.queue = append(w.queue, recs...)
	if len(w.queue) >= w.c.cfg.QueueLimit && !w.paused {
		w.paused = true
		w.cl.PauseFetchPartitions(w.partitions())
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) partitions() map[string][]int32 {
	return map[string][]int32{w.tp.topic: {w.tp.partition}}
}

// take returns the queued records and resumes a paused partition, which the
// worker is about to catch up with.
func (w *worker) take() []*kgo.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	recs := w.queue
	w.queue = nil
	if w.paused {
		w.paused = false
		w.cl.ResumeFetchPartitions(w.partitions())
	}
	return recs
}

// unpause clears a pause left by a stopped worker, so that a later owner of
// the partition fetches it.
func (w *worker) unpause() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.paused {
		w.paused = false
		w.cl.ResumeFetchPartitions(w.partitions())
	}
}

func (w *worker) run() {
	defer close(w.done)
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-w.wake:
		}
		recs := w.take()
		for len(recs) > 0 {
			n := min(len(recs), w.c.cfg.MaxBatch)
			if !w.processBatch(recs[:n]) {
				return // cancelled: what is left stays uncommitted
			}
			recs = recs[n:]
		}
	}
}

// process handles one record until it is applied, skipped as a duplicate or
// parked. It returns false only when the worker was cancelled first.
func (w *worker) process(r *kgo.Record) bool {
	c := w.c
	m, decodeErr := decode(r, c.cfg.MaxRecordBytes)
	ctx, span := c.startSpan(w.ctx, r, m)
	defer span.End()
	log := c.log.With("topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "event_id", m.ID, "event_type", m.EventType)
	park := func(cause error) bool {
		w.mu.Lock()
		topicID := w.topicID
		w.mu.Unlock()
		return c.park(ctx, log, span, r, topicID, cause)
	}

	if decodeErr != nil {
		return park(decodeErr)
	}
	backoff := c.cfg.MinBackoff
	var (
		earlySince   time.Time
		earlyBackoff = earlyMinBackoff
	)
	for attempt := 1; ; attempt++ {
		dup, err := c.apply(ctx, m)
		switch {
		case err == nil:
			if dup {
				log.DebugContext(ctx, "duplicate message skipped")
				span.SetAttributes(attribute.Bool("messaging.duplicate", true))
				c.observe(r.Topic, RecordDuplicate)
			} else {
				c.observe(r.Topic, RecordApplied)
			}
			return true
		case ctx.Err() != nil:
			return false
		case errors.Is(err, ErrPermanent):
			return park(err)
		case errors.Is(err, ErrEarly):
			// Ahead of what it answers: tried again soon, without counting
			// attempts, until it fits or EarlyWait has passed.
			if earlySince.IsZero() {
				earlySince = time.Now()
				c.observe(r.Topic, RecordEarly)
				log.InfoContext(ctx, "message ahead of the state it answers; waiting for that state", "err", err)
				span.AddEvent("early", trace.WithAttributes(attribute.String("error", err.Error())))
			} else if waited := time.Since(earlySince); waited >= c.cfg.EarlyWait {
				return park(fmt.Errorf("still ahead of the state it answers after %s: %w", waited.Round(time.Millisecond), err))
			}
			if !sleep(ctx, jitter(earlyBackoff)) {
				return false
			}
			earlyBackoff = min(2*earlyBackoff, earlyMaxBackoff)
			attempt--
			continue
		case c.transient(err):
			// Retried for as long as it lasts.
		case attempt >= c.cfg.MaxAttempts:
			return park(fmt.Errorf("gave up after %d attempts: %w", attempt, err))
		}
		c.observe(r.Topic, RecordRetried)
		log.WarnContext(ctx, "message failed, retrying", "attempt", attempt, "backoff", backoff, "err", err)
		span.AddEvent("retry", trace.WithAttributes(attribute.Int("attempt", attempt), attribute.String("error", err.Error())))
		if !sleep(ctx, jitter(backoff)) {
			return false
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

func (c *Consumer) transient(err error) bool {
	return Infrastructure(err) || (c.cfg.Retryable != nil && c.cfg.Retryable(err))
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

func (c *Consumer) startSpan(ctx context.Context, r *kgo.Record, m Message) (context.Context, trace.Span) {
	ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier(m.Headers))
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

// park stores record r with its error, retrying until the database takes
// it (or the worker is cancelled), so that its offset can be committed
// without losing it: it returns true only once r is in the parkedmessage
// table.
func (c *Consumer) park(ctx context.Context, log *slog.Logger, span trace.Span, r *kgo.Record, topicID [16]byte, cause error) bool {
	log.ErrorContext(ctx, "message parked", "err", cause)
	span.RecordError(cause)
	span.SetStatus(codes.Error, "message parked")
	backoff := c.cfg.MinBackoff
	for {
		err := insertParked(ctx, c.cfg.Pool, c.cfg.Group, r, topicID, cause)
		if err == nil {
			c.observe(r.Topic, RecordParked)
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

// The wait between attempts at a message ahead of the state it answers:
// that state is normally a few milliseconds from visible.
const (
	earlyMinBackoff = time.Millisecond
	earlyMaxBackoff = 100 * time.Millisecond
)

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
