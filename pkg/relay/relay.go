// Package relay does, without Docker, what Kafka Connect with Debezium's
// Postgres connector does in the Docker setup, reading the same connector
// files (debezium/connectors/*.json): it streams the changes of the captured
// tables from a logical replication slot (pgoutput) and publishes the
// records Debezium's EventRouter or ExtractNewRecordState transform would,
// through the same converters, with the same headers.
//
// What differs from Debezium on purpose is listed in the README ("The relay
// and Debezium"); every other difference is a bug.
package relay

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pglogrepl"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
)

// Config configures a Relay. Only Connector and Kafka are required; every
// other zero value is a working default.
type Config struct {
	// Connector says what to capture and how to route it.
	Connector Connector
	// ConnString is the database to read; it needs the REPLICATION
	// privilege (or superuser), the right to create the publication and
	// the relay_checkpoint table. Default: Connector.ConnString().
	ConnString string
	// Kafka is the producer. It is owned by the caller, who must not close
	// it while Run is running, and must be built with ProducerOptions (no
	// topic auto-creation, the relay's partitioner, acks from all in-sync
	// replicas, idempotent writes): NewRelay checks.
	Kafka *kgo.Client
	// Logger receives the relay's logs. Default: slog.Default().
	Logger *slog.Logger
	// StandbyTimeout bounds the time between two status updates to the
	// server: one is sent at least every StandbyTimeout/2. It must stay
	// below the server's wal_sender_timeout (60s by default). A walsender
	// holding the slot that has not heard from its client for
	// 2×StandbyTimeout is taken to belong to a dead relay. Default 10s.
	StandbyTimeout time.Duration
	// DrainTimeout bounds how long Run waits, when it stops (cancelled or
	// failing), for records already handed to Kafka. Default 10s.
	DrainTimeout time.Duration
	// DeliveryTimeout fails the Run when records are in flight and Kafka
	// answered none of them for that long (a broker down or unreachable);
	// the Run is restarted and resends. Default 30s.
	DeliveryTimeout time.Duration
	// CheckpointInterval is how often, at most, the checkpoint is written
	// while streaming. Default 1s.
	CheckpointInterval time.Duration
	// TopicPartitions and TopicReplicationFactor are used to create the
	// topics the relay publishes to (default 4 and -1, the broker's
	// default). Existing topics are left as they are.
	TopicPartitions        int32
	TopicReplicationFactor int16
	// TopicConfigs are the configs of the topics it creates (retention.ms);
	// nil: the broker's defaults.
	TopicConfigs map[string]*string
	// TracerProvider, when set, records a producer span ("<topic> publish")
	// for every record whose outbox row carried a sampled trace context,
	// and the record's traceparent header then names that span. Without a
	// provider, or when the span is not recorded, the headers are exactly
	// what Debezium would write.
	TracerProvider trace.TracerProvider
	// Published, when set, is called for every record Kafka acknowledged
	// (heartbeats included), from the producer's goroutines: it must be
	// fast and must not block (metrics).
	Published func(connector, topic string)
}

// Relay publishes the changes of one connector's tables from the
// PostgreSQL WAL to Kafka the way Debezium does with the connector's file
// (see Connector.Route for the records).
//
// Contract:
//   - Only committed transactions are published, in commit order, every row
//     of a transaction before any row of a later one. Records with the same
//     key go to the same partition, so per key Kafka's order is commit order.
//   - Delivery is at-least-once. The relay confirms a WAL position to the
//     slot only when every record of every transaction that committed at or
//     before it has been acknowledged by Kafka and recorded in the
//     checkpoint. After a crash, a failed produce or a restart, streaming
//     resumes from the confirmed position, so records may be sent again
//     (consumers deduplicate on the "id" header) but none is lost.
//   - Outbox (EventRouter) tables: inserts are published; updates follow
//     table.op.invalid.behavior (warn: skipped); deletes (Prune) and
//     truncates are never published. ExtractNewRecordState tables: inserts,
//     updates and deletes (per delete.tombstone.handling.mode).
//   - A change that cannot be routed (an update under "fatal", a missing
//     column, ...) stops Run with an error after the records before it are
//     delivered and confirmed; the next Run stops at it again.
//   - Topics are created (ensureTopic) before the first record of a Run is
//     produced to them; the producer never relies on auto-creation.
//   - Rows that existed before the slot are published by the snapshot
//     (snapshot.mode=initial, the default): every row of the captured
//     tables, read in one transaction before streaming starts — on the
//     slot's exported snapshot when Run creates the slot, so each row once.
//     A slot created by Setup over non-empty tables, or a snapshot cut short
//     by a crash, is snapshotted at the next Run on a fresh read, and rows
//     committed in between are published twice.
//   - The checkpoint (table relay_checkpoint, one row per slot) records, per
//     topic, the topic ID and the end offset of every partition Kafka has
//     acknowledged. At the start of every Run it is compared with the
//     broker; a missing or recreated topic, or a partition that ends below
//     the recorded offset, means the broker lost records: the relay then
//     publishes the captured tables again (the snapshot's code path), waits
//     for Kafka to acknowledge all of it, records it and streams on. Rows
//     already pruned from the outbox cannot be re-published.
//     An acknowledgement below a recorded offset while streaming ends the
//     Run the same way and marks the tables for re-publishing.
//     Re-publishing in table order is safe because every consumer skips an
//     id it has already processed, so only records no consumer processed
//     have any effect; and in this system at most one such record exists
//     per topic and key: a saga writes the next message for a key only after
//     the previous one was consumed and answered. For ExtractNewRecordState
//     tables the re-published record is the row's current state, and the
//     stream that follows ends with the newest change of every key.
//   - A slot still held by the walsender of a relay that died (it has not
//     answered for 2×StandbyTimeout) is taken over: that walsender is
//     terminated, and the takeover logged.
//
// A Relay runs one Run at a time; run one Relay (and one slot) per
// connector.
type Relay struct {
	cfg       Config
	log       *slog.Logger
	confirmed atomic.Uint64
	running   atomic.Bool
}

// NewRelay validates cfg and returns a Relay. It does no I/O.
func NewRelay(cfg Config) (*Relay, error) {
	c := cfg.Connector
	switch {
	case cfg.Kafka == nil:
		return nil, fmt.Errorf("new relay %s: no kafka client", c.Name)
	case c.SlotName == "" || c.PublicationName == "":
		return nil, fmt.Errorf("new relay %s: slot and publication names are required", c.Name)
	case c.Transform != TransformEventRouter && c.Transform != TransformExtractNewRecordState:
		return nil, fmt.Errorf("new relay %s: unsupported transform %q", c.Name, c.Transform)
	case c.Key.Class == "" || c.Value.Class == "":
		return nil, fmt.Errorf("new relay %s: key and value converters are required", c.Name)
	}
	if err := checkProducer(cfg.Kafka); err != nil {
		return nil, fmt.Errorf("new relay %s: %w", c.Name, err)
	}
	if cfg.ConnString == "" {
		cfg.ConnString = c.ConnString()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StandbyTimeout <= 0 {
		cfg.StandbyTimeout = 10 * time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	if cfg.DeliveryTimeout <= 0 {
		cfg.DeliveryTimeout = 30 * time.Second
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = time.Second
	}
	if cfg.TopicPartitions <= 0 {
		cfg.TopicPartitions = 4
	}
	if cfg.TopicReplicationFactor == 0 {
		cfg.TopicReplicationFactor = -1
	}
	return &Relay{cfg: cfg, log: cfg.Logger.With("connector", c.Name)}, nil
}

// Confirmed returns the last WAL position the relay confirmed to the slot
// (or found confirmed there when Run started). Every record of every
// transaction that committed before it has been acknowledged by Kafka.
func (r *Relay) Confirmed() pglogrepl.LSN { return pglogrepl.LSN(r.confirmed.Load()) }

func (r *Relay) storeConfirmed(lsn pglogrepl.LSN) {
	for {
		old := r.confirmed.Load()
		if uint64(lsn) <= old || r.confirmed.CompareAndSwap(old, uint64(lsn)) {
			return
		}
	}
}

// Setup prepares the database without publishing anything: the
// relay_checkpoint table and this slot's row, the publication (per
// publication.autocreate.mode) and the logical replication slot (pgoutput).
// Rows committed from then on are streamed by Run. When Setup creates the
// slot and the captured tables are empty at that point, there is nothing to
// snapshot; otherwise Run's snapshot publishes the rows (unless
// snapshot.mode=no_data), and rows committed between Setup and that
// snapshot are published twice. It is idempotent and safe to call
// concurrently with itself; Run does it too.
func (r *Relay) Setup(ctx context.Context) error {
	conn, err := r.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	p, err := r.prepare(ctx, conn)
	if err != nil {
		return err
	}
	repl, slot, err := r.openSlot(ctx, conn)
	if err != nil {
		return err
	}
	defer repl.Close(context.WithoutCancel(ctx))
	if !slot.created || p.ckpt.SnapshotDone || p.ckpt.existed && len(p.ckpt.Topics) > 0 {
		return nil
	}
	empty, err := tablesEmpty(ctx, conn, p.tables, slot.snapshot)
	if err != nil || !empty {
		return err
	}
	rn := &run{r: r, ckpt: p.ckpt}
	rn.ckpt.SnapshotDone = true // nothing existed before the slot
	return rn.writeCheckpoint(ctx, conn)
}

// Run publishes until ctx is cancelled or an error occurs: it sets up (see
// Setup), checks the checkpoint against the broker, publishes the tables
// when the snapshot or a broker loss requires it, then streams from the
// slot. A WAL position is confirmed only once every record up to it is
// acknowledged and checkpointed (see Relay).
//
// A failed produce, a change that cannot be routed, a broker that lost
// records or a lost connection ends Run with the error, after the records
// already handed to Kafka are delivered (bounded by DrainTimeout); the
// caller restarts it (Supervisor does), and the new Run resends everything
// after the confirmed position. When ctx is cancelled, Run stops reading,
// drains, confirms what is safe, closes its connections and returns nil.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("run relay %s: already running", r.cfg.Connector.Name)
	}
	defer r.running.Store(false)
	err := r.run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// run is one Run: prepare the database, open the slot, catch up (snapshot,
// re-publish), stream.
func (r *Relay) run(ctx context.Context) error {
	conn, err := r.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	p, err := r.prepare(ctx, conn)
	if err != nil {
		return err
	}
	repl, slot, err := r.openSlot(ctx, conn)
	if err != nil {
		return err
	}
	r.storeConfirmed(slot.confirmed)
	// Produce with a context that outlives ctx: records already handed to
	// Kafka are given DrainTimeout to be delivered after cancellation.
	pctx, pcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer pcancel()
	stopDrainTimer := context.AfterFunc(ctx, func() { time.AfterFunc(r.cfg.DrainTimeout, pcancel) })
	defer stopDrainTimer()
	rn := &run{
		r: r, id: uuid.NewString(), adm: kadm.NewClient(r.cfg.Kafka), pctx: pctx,
		topics: map[string]string{}, ckpt: p.ckpt, changed: make(chan struct{}, 1),
	}
	s := newStream(rn, repl, conn, p.tables, slot.confirmed)
	if err := rn.catchUp(ctx, conn, p.tables, slot); err != nil {
		return s.finish(ctx, err)
	}
	if err := r.startReplication(ctx, repl, conn); err != nil {
		return s.finish(ctx, err)
	}
	s.live = true
	r.log.InfoContext(ctx, "relay streaming", "slot", r.cfg.Connector.SlotName, "lsn", slot.confirmed.String(), "run_id", rn.id)
	return s.finish(ctx, s.loop(ctx))
}
