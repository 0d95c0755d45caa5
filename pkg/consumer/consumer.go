// Package consumer runs the Kafka side of an idempotent, transactional
// message handler. For every record it opens a database transaction in which
// it journals the message id (pkg/outbox MarkConsumed, keyed by consumer and
// event id) and calls the handler; the record's offset is committed to Kafka
// only after that transaction committed. A redelivered message is skipped by
// the journal.
//
// Ordering and progress: every assigned partition has one long-lived worker
// that handles its records strictly in order, one at a time; partitions
// never wait for each other. A partition whose worker falls behind (a record
// in retry) is paused at the broker until the worker catches up, so it holds
// back only itself. A rebalance stops the workers of the revoked partitions
// (a record in retry is abandoned, uncommitted, and redelivered to the new
// owner) and commits what they finished.
//
// Failures: a failure of the infrastructure (see Infrastructure, plus
// Config.Retryable) is retried with capped exponential backoff for as long
// as it lasts and never parks a message. A message that arrived before the
// state it answers is visible (the handler says so with Early) is tried
// again every few milliseconds until it fits, for up to Config.EarlyWait.
// A message that can never succeed —
// undecodable, without an "id" header, or one whose handler returns a
// Permanent error — is parked in the parkedmessage table with its error,
// never dropped. Any other error is retried Config.MaxAttempts times and
// then parked: a message that keeps failing for a reason nobody classified
// must not hold its partition forever, and a parked message can be replayed.
//
// Data loss at the broker: a partition whose committed offset lies beyond
// its log (or that lost records under the consumer) is consumed again from
// its earliest offset, logged once; so is a topic that was deleted and
// created again (detected by the topic id stored in the commit metadata).
// The journal makes the re-read harmless.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// Config configures a Consumer. Zero values take the defaults.
type Config struct {
	// Group is the Kafka consumer group and the journal's consumer name.
	Group string
	// Topics to consume.
	Topics []string
	// Pool is the service database holding the journal and parked messages.
	Pool *pgxpool.Pool
	// Handler applies messages.
	Handler Handler
	// Retryable, when set, reports further errors of the handler's domain
	// that are transient, such as a lost optimistic lock; they are retried
	// like infrastructure failures, without limit.
	Retryable func(error) bool
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between attempts of a
	// failing message (defaults 50ms and 5s).
	MinBackoff, MaxBackoff time.Duration
	// MaxAttempts is how many times a message failing with an unclassified
	// error is tried before it is parked (default 20).
	MaxAttempts int
	// EarlyWait bounds how long a message the handler reports as Early
	// (ahead of the state it answers) is retried, every few milliseconds,
	// before it is parked (default 30s). Meanwhile its partition waits.
	EarlyWait time.Duration
	// MaxRecordBytes bounds a record (key, value and headers together); a
	// larger one is parked unread (default DefaultMaxRecordBytes).
	MaxRecordBytes int
	// MaxPollRecords bounds the records taken from the client at once
	// (default 1000).
	MaxPollRecords int
	// MaxBatch is how many records of a partition, already waiting, may be
	// applied in one transaction (default 64; 1 applies each on its own).
	// Each still gets its journal entry; a batch that fails is applied
	// again record by record. Under load this cuts commits per message;
	// idle, a record never waits for others.
	MaxBatch int
	// QueueLimit is how many records may wait for a partition's worker
	// before that partition's fetching is paused (default 500).
	QueueLimit int
	// CommitInterval is how often handled offsets are committed (default
	// 500ms); they are also committed on revocation and shutdown.
	CommitInterval time.Duration
	// TracerProvider receives the processing spans; nil means the global one.
	TracerProvider trace.TracerProvider
	// Observer, when set, is told what became of every record (metrics).
	Observer Observer
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
	if c.EarlyWait == 0 {
		c.EarlyWait = 30 * time.Second
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if c.MaxPollRecords == 0 {
		c.MaxPollRecords = 1000
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 64
	}
	if c.QueueLimit == 0 {
		c.QueueLimit = 500
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = 500 * time.Millisecond
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
}

// Consumer consumes Config.Topics with a kgo.Client its caller owns.
type Consumer struct {
	cfg    Config
	log    *slog.Logger
	tracer trace.Tracer

	mu        sync.Mutex
	cl        *kgo.Client
	workers   map[topicPartition]*worker
	handled   map[topicPartition]kgo.EpochOffset // next offset to commit, per owned partition
	committed map[topicPartition]kgo.EpochOffset // what the group has committed of handled
	offsets   offsetCheck
	lost      map[topicPartition]bool // data loss already logged

	commitMu sync.Mutex // one commit at a time
}

type topicPartition struct {
	topic     string
	partition int32
}

// New validates cfg and returns a Consumer. It does no I/O.
func New(cfg Config) (*Consumer, error) {
	cfg.defaults()
	if cfg.Group == "" || len(cfg.Topics) == 0 || cfg.Pool == nil || cfg.Handler == nil {
		return nil, errors.New("consumer: Group, Topics, Pool and Handler are required")
	}
	return &Consumer{
		cfg:       cfg,
		log:       cfg.Logger.With("group", cfg.Group),
		tracer:    cfg.TracerProvider.Tracer("github.com/sagabox/sagabox/pkg/consumer"),
		workers:   map[topicPartition]*worker{},
		handled:   map[topicPartition]kgo.EpochOffset{},
		committed: map[topicPartition]kgo.EpochOffset{},
		offsets:   offsetCheck{ids: map[string]string{}, ends: map[topicPartition]int64{}, reset: map[topicPartition]string{}},
		lost:      map[topicPartition]bool{},
	}, nil
}

// Opts returns the client options the consumer relies on: its group and
// topics, manual commits, reset to the earliest offset, and the group
// callbacks that start and stop the partition workers. Create the client
// with them plus your own (kgo.SeedBrokers, ...) and pass it to Run; one
// client serves one Consumer.
func (c *Consumer) Opts() []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumerGroup(c.cfg.Group),
		kgo.ConsumeTopics(c.cfg.Topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		// A member that died without leaving hands its partitions over
		// after 10s (franz-go's default is 45s).
		kgo.SessionTimeout(10 * time.Second),
		kgo.HeartbeatInterval(time.Second),
		// Rebalances wait only while a poll's records are handed to the
		// workers, which never blocks.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lostPartitions),
		kgo.OnOffsetsFetched(c.offsetsFetched),
		kgo.AdjustFetchOffsetsFn(c.adjustOffsets),
		// The fetch limits (limits.go).
		kgo.FetchMaxPartitionBytes(FetchMaxPartitionBytes),
		kgo.FetchMaxBytes(FetchMaxBytes),
		kgo.BrokerMaxReadBytes(BrokerMaxReadBytes),
	}
}

// Run consumes until ctx ends, then stops the workers, commits what they
// handled and returns nil. cl must have been created with Opts; the caller
// closes it after Run returns (which leaves the group). Records in flight
// when ctx ends are not committed: they are redelivered later and skipped by
// the journal if their transaction had committed.
func (c *Consumer) Run(ctx context.Context, cl *kgo.Client) error {
	c.mu.Lock()
	if c.cl != nil {
		c.mu.Unlock()
		return errors.New("consumer: Run called twice")
	}
	c.cl = cl
	c.mu.Unlock()

	commitDone := make(chan struct{})
	commitCtx, stopCommits := context.WithCancel(ctx)
	go func() {
		defer close(commitDone)
		c.commitLoop(commitCtx)
	}()
	defer func() {
		stopCommits()
		<-commitDone
		c.stopAll()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := c.commit(cctx); err != nil {
			c.log.WarnContext(cctx, "commit offsets at shutdown failed", "err", err)
		}
		cl.AllowRebalance()
	}()

	for {
		fetches := cl.PollRecords(ctx, c.cfg.MaxPollRecords)
		if ctx.Err() != nil {
			return nil
		}
		if fetches.IsClientClosed() {
			return errors.New("consumer: kafka client closed")
		}
		fetches.EachError(func(topic string, p int32, err error) {
			c.fetchError(ctx, topicPartition{topic, p}, err)
		})
		fetches.EachTopic(func(t kgo.FetchTopic) {
			for _, p := range t.Partitions {
				if len(p.Records) == 0 {
					continue
				}
				c.mu.Lock()
				w := c.workers[topicPartition{t.Topic, p.Partition}]
				c.mu.Unlock()
				if w == nil {
					continue // revoked meanwhile: not marked, so redelivered to the new owner
				}
				w.push(t.TopicID, p.Records)
			}
		})
		cl.AllowRebalance()
	}
}

// fetchError logs a fetch error. A partition that lost records under the
// consumer is consumed again from its earliest offset, whatever offset the
// client chose to resume at: records the broker lost may come back (the
// relay re-publishes them) below that offset.
func (c *Consumer) fetchError(ctx context.Context, tp topicPartition, err error) {
	var loss *kgo.ErrDataLoss
	if !errors.As(err, &loss) {
		c.log.WarnContext(ctx, "kafka fetch error", "topic", tp.topic, "partition", tp.partition, "err", err)
		return
	}
	c.mu.Lock()
	logged := c.lost[tp]
	c.lost[tp] = true
	c.mu.Unlock()
	if !logged {
		c.log.WarnContext(ctx, "partition lost records at the broker; consuming it again from the earliest offset (the journal skips what was applied)",
			"topic", tp.topic, "partition", tp.partition, "consumed_to", loss.ConsumedTo, "reset_to", loss.ResetTo)
	}
	c.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{tp.topic: {tp.partition: {Epoch: -1, Offset: 0}}})
}

func (c *Consumer) commitLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.commit(ctx); err != nil && ctx.Err() == nil {
			c.log.WarnContext(ctx, "commit offsets failed", "err", err)
		}
	}
}

// handle records that r was applied (or skipped, or parked): its
// partition's next offset to commit moves past it.
func (c *Consumer) handle(r *kgo.Record) {
	c.mu.Lock()
	c.handled[topicPartition{r.Topic, r.Partition}] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
	c.mu.Unlock()
}

// commit commits the handled offsets that changed since the last commit,
// each stamped with its topic's id (see offsetCheck).
func (c *Consumer) commit(ctx context.Context) error {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	offsets := map[string]map[int32]kgo.EpochOffset{}
	c.mu.Lock()
	for tp, eo := range c.handled {
		if c.committed[tp] == eo {
			continue
		}
		if offsets[tp.topic] == nil {
			offsets[tp.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[tp.topic][tp.partition] = eo
	}
	c.mu.Unlock()
	if len(offsets) == 0 {
		return nil
	}
	var err error
	c.cl.CommitOffsetsSync(kgo.PreCommitFnContext(ctx, c.offsets.stamp), offsets,
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, cerr error) {
			if cerr != nil {
				err = cerr
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil {
						err = errors.Join(err, fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, perr))
					}
				}
			}
			if err != nil {
				return
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			for topic, ps := range offsets {
				for p, eo := range ps {
					c.committed[topicPartition{topic, p}] = eo
				}
			}
		})
	if err != nil {
		return fmt.Errorf("commit offsets of group %s: %w", c.cfg.Group, err)
	}
	return nil
}

// forget drops the offsets of partitions this member no longer owns: a
// later commit must never overwrite the new owner's progress.
func (c *Consumer) forget(tps map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic, partitions := range tps {
		for _, p := range partitions {
			delete(c.handled, topicPartition{topic, p})
			delete(c.committed, topicPartition{topic, p})
		}
	}
}

// assigned starts a worker per new partition and learns the ids of the
// assigned topics (needed before the committed offsets are checked).
func (c *Consumer) assigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	c.offsets.learn(ctx, cl, assigned, c.log)
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic, partitions := range assigned {
		for _, p := range partitions {
			tp := topicPartition{topic, p}
			if _, ok := c.workers[tp]; ok {
				continue
			}
			w := newWorker(c, cl, tp)
			c.workers[tp] = w
			go w.run()
		}
	}
	c.log.InfoContext(ctx, "partitions assigned", "partitions", assigned)
}

// revoked stops the workers of the revoked partitions, waits for them and
// commits what they finished, so the new owner starts where they stopped.
func (c *Consumer) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	c.stop(revoked)
	if err := c.commit(ctx); err != nil {
		c.log.WarnContext(ctx, "commit offsets on revoke failed", "err", err)
	}
	c.forget(revoked)
	if len(revoked) > 0 {
		c.log.InfoContext(ctx, "partitions revoked", "partitions", revoked)
	}
}

// lostPartitions stops the workers of partitions lost without a clean
// revoke; nothing can be committed for them any more.
func (c *Consumer) lostPartitions(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.stop(lost)
	c.forget(lost)
	if len(lost) > 0 {
		c.log.WarnContext(ctx, "partitions lost", "partitions", lost)
	}
}

func (c *Consumer) stop(tps map[string][]int32) {
	var ws []*worker
	c.mu.Lock()
	for topic, partitions := range tps {
		for _, p := range partitions {
			tp := topicPartition{topic, p}
			if w, ok := c.workers[tp]; ok {
				ws = append(ws, w)
				delete(c.workers, tp)
			}
		}
	}
	c.mu.Unlock()
	stopWorkers(ws)
}

func (c *Consumer) stopAll() {
	c.mu.Lock()
	ws := make([]*worker, 0, len(c.workers))
	for tp, w := range c.workers {
		ws = append(ws, w)
		delete(c.workers, tp)
	}
	c.mu.Unlock()
	stopWorkers(ws)
}

func stopWorkers(ws []*worker) {
	for _, w := range ws {
		w.cancel()
	}
	for _, w := range ws {
		<-w.done
		w.unpause()
	}
}
