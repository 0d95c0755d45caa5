package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
)

// RelayConfig configures a Relay. Only Connector and Kafka are required.
type RelayConfig struct {
	// Connector says what to capture and how to route it.
	Connector Connector
	// ConnString is the database to read; it needs the REPLICATION
	// privilege (or superuser) and, for Setup, the right to create the
	// publication. Default: Connector.ConnString().
	ConnString string
	// Kafka is the producer. It is owned by the caller, who must not close
	// it while Run is running. It should allow topic auto-creation (or the
	// topics must exist); kgo's defaults (idempotent, acks=all, key-hash
	// partitioning) give the ordering documented on Relay.
	Kafka *kgo.Client
	// Logger receives the relay's logs. Default: slog.Default().
	Logger *slog.Logger
	// StandbyTimeout bounds the time between two status updates to the
	// server: one is sent at least every StandbyTimeout/2. It must stay
	// below the server's wal_sender_timeout (60s by default). Default 10s.
	StandbyTimeout time.Duration
	// DrainTimeout bounds how long Run waits, on cancellation, for records
	// already handed to Kafka before confirming and returning. Default 5s.
	DrainTimeout time.Duration
	// TracerProvider, when set, records a producer span ("<topic> publish")
	// for every record whose outbox row carried a trace context, and the
	// record's traceparent header then names that span. Nil: no spans, and
	// headers are exactly the row's values.
	TracerProvider trace.TracerProvider
}

// Relay streams the inserts into the connector's tables from the
// PostgreSQL WAL (a logical replication slot with pgoutput) to Kafka,
// routed as Debezium with the connector's transform would (see
// Connector.Route). It is the Docker-less replacement of Kafka Connect +
// Debezium and reads the same connector file.
//
// Contract:
//   - Only committed transactions are published, in commit order, every row
//     of a transaction before any row of a later one. Records with the same
//     key go to the same partition, so per key Kafka's order is commit order.
//   - Delivery is at-least-once. The relay confirms a WAL position to the
//     slot only when every record of every transaction that committed at or
//     before it has been acknowledged by Kafka. After a crash, a failed
//     produce or a restart, streaming resumes from the confirmed position,
//     so records may be sent again (consumers deduplicate on the "id"
//     header) but none is lost.
//   - Outbox (EventRouter) tables: inserts are published; updates are
//     skipped according to table.op.invalid.behavior (warn by default);
//     deletes (Prune) and truncates are never published.
//     ExtractNewRecordState tables: inserts and updates are published,
//     deletes are not.
//   - Rows committed before the slot was created (by Setup) are not
//     published: run Setup before the services write.
//
// A Relay runs one Run at a time; run one Relay (and one slot) per
// connector.
type Relay struct {
	cfg       RelayConfig
	log       *slog.Logger
	confirmed atomic.Uint64
	running   atomic.Bool
}

// confirmPoll is how long a delivered position may wait before it is
// confirmed, and how often the stream checks for a failed produce.
const confirmPoll = 50 * time.Millisecond

// NewRelay validates cfg and returns a Relay. It does no I/O.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	c := cfg.Connector
	switch {
	case cfg.Kafka == nil:
		return nil, fmt.Errorf("new relay %s: no kafka client", c.Name)
	case c.SlotName == "" || c.PublicationName == "":
		return nil, fmt.Errorf("new relay %s: slot and publication names are required", c.Name)
	case len(c.Tables) == 0:
		return nil, fmt.Errorf("new relay %s: no tables", c.Name)
	case c.Transform != TransformEventRouter && c.Transform != TransformExtractNewRecordState:
		return nil, fmt.Errorf("new relay %s: unsupported transform %q", c.Name, c.Transform)
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
		cfg.DrainTimeout = 5 * time.Second
	}
	return &Relay{cfg: cfg, log: cfg.Logger}, nil
}

// Confirmed returns the last WAL position the relay confirmed to the slot
// (or found confirmed there when Run started). Every record of every
// transaction that committed before it has been acknowledged by Kafka.
func (r *Relay) Confirmed() pglogrepl.LSN { return pglogrepl.LSN(r.confirmed.Load()) }

// Setup creates the publication (FOR TABLE the connector's tables, like
// Debezium's publication.autocreate.mode=filtered; missing tables are added
// to an existing one) and the logical replication slot (plugin pgoutput)
// when they do not exist. It is idempotent and safe to call concurrently
// with itself; Run calls it too.
func (r *Relay) Setup(ctx context.Context) error {
	_, err := r.setup(ctx)
	return err
}

type setupResult struct {
	confirmed pglogrepl.LSN
	keys      map[string][]string // "schema.table" -> primary key columns
}

func (r *Relay) setup(ctx context.Context) (setupResult, error) {
	c := r.cfg.Connector
	conn, err := pgx.Connect(ctx, r.cfg.ConnString)
	if err != nil {
		return setupResult{}, fmt.Errorf("setup relay %s: connect: %w", c.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := r.ensurePublication(ctx, conn); err != nil {
		return setupResult{}, fmt.Errorf("setup relay %s: %w", c.Name, err)
	}
	lsn, err := r.ensureSlot(ctx, conn)
	if err != nil {
		return setupResult{}, fmt.Errorf("setup relay %s: %w", c.Name, err)
	}
	res := setupResult{confirmed: lsn, keys: map[string][]string{}}
	const q = `SELECT a.attname FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey::int2[])
		WHERE i.indrelid = $1::regclass AND i.indisprimary
		ORDER BY array_position(i.indkey::int2[], a.attnum)`
	for _, t := range c.Tables {
		rows, _ := conn.Query(ctx, q, quoteTable(t))
		cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return setupResult{}, fmt.Errorf("setup relay %s: load primary key of %s: %w", c.Name, t, err)
		}
		res.keys[t] = cols
	}
	return res, nil
}

func (r *Relay) ensurePublication(ctx context.Context, conn *pgx.Conn) error {
	c := r.cfg.Connector
	name := pgx.Identifier{c.PublicationName}.Sanitize()
	const qTables = `SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1`
	const qExists = `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`
	var exists bool
	if err := conn.QueryRow(ctx, qExists, c.PublicationName).Scan(&exists); err != nil {
		return fmt.Errorf("look up publication %s: %w", c.PublicationName, err)
	}
	if !exists {
		tables := make([]string, len(c.Tables))
		for i, t := range c.Tables {
			tables[i] = quoteTable(t)
		}
		_, err := conn.Exec(ctx, "CREATE PUBLICATION "+name+" FOR TABLE "+strings.Join(tables, ", "))
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42710" { // duplicate_object: created concurrently
			return nil
		}
		if err != nil {
			return fmt.Errorf("create publication %s: %w", c.PublicationName, err)
		}
		r.log.InfoContext(ctx, "publication created", "connector", c.Name, "publication", c.PublicationName)
		return nil
	}
	rows, _ := conn.Query(ctx, qTables, c.PublicationName)
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list tables of publication %s: %w", c.PublicationName, err)
	}
	for _, t := range c.Tables {
		if slices.Contains(have, t) {
			continue
		}
		if _, err := conn.Exec(ctx, "ALTER PUBLICATION "+name+" ADD TABLE "+quoteTable(t)); err != nil {
			return fmt.Errorf("add table %s to publication %s: %w", t, c.PublicationName, err)
		}
		r.log.InfoContext(ctx, "table added to publication", "connector", c.Name, "publication", c.PublicationName, "table", t)
	}
	return nil
}

// ensureSlot creates the slot if needed and returns its confirmed position.
func (r *Relay) ensureSlot(ctx context.Context, conn *pgx.Conn) (pglogrepl.LSN, error) {
	c := r.cfg.Connector
	const qSlot = `SELECT coalesce(database, ''), coalesce(plugin, ''), coalesce(confirmed_flush_lsn, '0/0'), current_database()
		FROM pg_replication_slots WHERE slot_name = $1`
	const qCreate = `SELECT lsn FROM pg_create_logical_replication_slot($1, 'pgoutput')`
	for attempt := 0; ; attempt++ {
		var db, plugin, cur string
		var lsn pglogrepl.LSN
		err := conn.QueryRow(ctx, qSlot, c.SlotName).Scan(&db, &plugin, &lsn, &cur)
		if err == nil {
			if db != cur || plugin != "pgoutput" {
				return 0, fmt.Errorf("slot %s belongs to database %q with plugin %q, want %q with pgoutput", c.SlotName, db, plugin, cur)
			}
			return lsn, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("look up slot %s: %w", c.SlotName, err)
		}
		if err := conn.QueryRow(ctx, qCreate, c.SlotName).Scan(&lsn); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "42710" && attempt == 0 { // created concurrently
				continue
			}
			return 0, fmt.Errorf("create slot %s: %w", c.SlotName, err)
		}
		r.log.InfoContext(ctx, "replication slot created", "connector", c.Name, "slot", c.SlotName, "lsn", lsn.String())
		return lsn, nil
	}
}

func quoteTable(t string) string {
	schema, table, _ := strings.Cut(t, ".")
	return pgx.Identifier{schema, table}.Sanitize()
}

// Run sets up (see Setup) and streams until ctx is cancelled or an error
// occurs. Each routed row is produced asynchronously; a WAL position is
// confirmed only once every record up to it is acknowledged (see Relay).
//
// A failed produce, a routing error (e.g. a NULL route field) or a lost
// connection ends Run with the error; the caller restarts it, and the new
// Run resends everything after the confirmed position. When ctx is
// cancelled, Run stops reading, waits up to DrainTimeout for records
// already handed to Kafka, confirms what is safe, closes the connection and
// returns nil.
func (r *Relay) Run(ctx context.Context) error {
	c := r.cfg.Connector
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("run relay %s: already running", c.Name)
	}
	defer r.running.Store(false)
	st, err := r.setup(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	r.storeConfirmed(st.confirmed)
	conn, err := r.startReplication(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	s := &stream{
		relay:   r,
		conn:    conn,
		keys:    st.keys,
		rels:    map[uint32]Table{},
		safe:    st.confirmed,
		sent:    st.confirmed,
		changed: make(chan struct{}, 1),
	}
	// Produce with a context that outlives ctx: records already handed to
	// Kafka are given DrainTimeout to be delivered after cancellation.
	pctx, pcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer pcancel()
	stopDrainTimer := context.AfterFunc(ctx, func() { time.AfterFunc(r.cfg.DrainTimeout, pcancel) })
	defer stopDrainTimer()
	s.pctx = pctx
	r.log.InfoContext(ctx, "relay streaming", "connector", c.Name, "slot", c.SlotName, "lsn", st.confirmed.String())
	err = s.loop(ctx)
	return s.finish(ctx, err)
}

func (r *Relay) storeConfirmed(lsn pglogrepl.LSN) {
	for {
		old := r.confirmed.Load()
		if uint64(lsn) <= old || r.confirmed.CompareAndSwap(old, uint64(lsn)) {
			return
		}
	}
}

// startReplication opens a replication connection and starts streaming
// from the slot's confirmed position. A slot still held by a previous
// connection (whose walsender has not exited yet) is waited for briefly.
func (r *Relay) startReplication(ctx context.Context) (*pgconn.PgConn, error) {
	c := r.cfg.Connector
	cfg, err := pgconn.ParseConfig(r.cfg.ConnString)
	if err != nil {
		return nil, fmt.Errorf("run relay %s: parse connection string: %w", c.Name, err)
	}
	cfg.RuntimeParams["replication"] = "database"
	args := []string{
		"proto_version '1'",
		"publication_names '" + strings.ReplaceAll(c.PublicationName, "'", "''") + "'",
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := pgconn.ConnectConfig(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("run relay %s: connect for replication: %w", c.Name, err)
		}
		err = pglogrepl.StartReplication(ctx, conn, pgx.Identifier{c.SlotName}.Sanitize(), 0,
			pglogrepl.StartReplicationOptions{PluginArgs: args})
		if err == nil {
			return conn, nil
		}
		conn.Close(context.WithoutCancel(ctx))
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "55006" || time.Now().After(deadline) { // object_in_use
			return nil, fmt.Errorf("run relay %s: start replication on slot %s: %w", c.Name, c.SlotName, err)
		}
		r.log.DebugContext(ctx, "replication slot busy, retrying", "connector", c.Name, "slot", c.SlotName)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stream is the state of one Run. Produce callbacks (franz-go goroutines)
// and the reading goroutine share the fields under mu; a late callback of
// a finished Run only touches its own stream.
type stream struct {
	relay *Relay
	conn  *pgconn.PgConn
	pctx  context.Context
	keys  map[string][]string
	rels  map[uint32]Table
	cur   *txn // open transaction, reading goroutine only

	sent     pglogrepl.LSN // last position sent to the server
	lastSend time.Time

	mu       sync.Mutex
	queue    []*txn // transactions not yet confirmable, in commit order
	safe     pglogrepl.LSN
	inflight int
	failed   error
	changed  chan struct{} // signalled after each produce callback
}

// txn is one transaction: records still awaiting Kafka's acknowledgement
// and, once committed, the end of its commit record.
type txn struct {
	pending   int
	committed bool
	end       pglogrepl.LSN
}

func (s *stream) loop(ctx context.Context) error {
	r := s.relay
	interval := r.cfg.StandbyTimeout / 2
	s.lastSend = time.Now()
	for {
		if ctx.Err() != nil {
			return nil
		}
		s.mu.Lock()
		failed, safe, busy := s.failed, s.safe, len(s.queue) > 0
		s.mu.Unlock()
		if failed != nil {
			return failed
		}
		now := time.Now()
		if now.Sub(s.lastSend) >= interval || (safe > s.sent && now.Sub(s.lastSend) >= confirmPoll) {
			if err := s.sendStatus(ctx, false); err != nil {
				return err
			}
		}
		deadline := s.lastSend.Add(interval)
		if busy || safe > s.sent {
			deadline = minTime(deadline, time.Now().Add(confirmPoll))
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		msg, err := s.conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			// A timeout (or ctx's cancellation) leaves the connection usable.
			if ctx.Err() != nil || pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("run relay %s: receive: %w", r.cfg.Connector.Name, err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if err := s.handleCopyData(ctx, msg.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("run relay %s: replication: %w", r.cfg.Connector.Name, pgconn.ErrorResponseToPgError(msg))
		default:
			return fmt.Errorf("run relay %s: replication: unexpected message %T", r.cfg.Connector.Name, msg)
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (s *stream) handleCopyData(ctx context.Context, data []byte) error {
	name := s.relay.cfg.Connector.Name
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("run relay %s: parse keepalive: %w", name, err)
		}
		// Everything committed before the server's position has been
		// streamed before this keepalive; with nothing open or in flight,
		// that position is delivered too.
		s.mu.Lock()
		if len(s.queue) == 0 && s.cur == nil && ka.ServerWALEnd > s.safe {
			s.safe = ka.ServerWALEnd
		}
		s.mu.Unlock()
		if ka.ReplyRequested {
			return s.sendStatus(ctx, false)
		}
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("run relay %s: parse xlog data: %w", name, err)
		}
		return s.handleWAL(ctx, xld)
	}
	return nil
}

func (s *stream) handleWAL(ctx context.Context, xld pglogrepl.XLogData) error {
	r := s.relay
	c := r.cfg.Connector
	m, err := pglogrepl.Parse(xld.WALData)
	if err != nil {
		return fmt.Errorf("run relay %s: decode pgoutput message at %s: %w", c.Name, xld.WALStart, err)
	}
	switch m := m.(type) {
	case *pglogrepl.RelationMessage:
		t := Table{Schema: m.Namespace, Name: m.RelationName}
		keys := s.keys[t.QualifiedName()]
		for _, col := range m.Columns {
			t.Columns = append(t.Columns, Column{Name: col.Name, Type: col.DataType, Key: slices.Contains(keys, col.Name)})
		}
		s.rels[m.RelationID] = t
	case *pglogrepl.BeginMessage:
		s.cur = &txn{}
		s.mu.Lock()
		s.queue = append(s.queue, s.cur)
		s.mu.Unlock()
	case *pglogrepl.CommitMessage:
		if s.cur == nil {
			return fmt.Errorf("run relay %s: commit at %s outside a transaction", c.Name, m.CommitLSN)
		}
		s.mu.Lock()
		s.cur.committed = true
		s.cur.end = m.TransactionEndLSN
		s.advance()
		s.mu.Unlock()
		s.cur = nil
	case *pglogrepl.InsertMessage:
		return s.emit(ctx, m.RelationID, m.Tuple, nil, xld.WALStart)
	case *pglogrepl.UpdateMessage:
		t := s.rels[m.RelationID]
		if c.Transform == TransformExtractNewRecordState {
			return s.emit(ctx, m.RelationID, m.NewTuple, m.OldTuple, xld.WALStart)
		}
		switch c.EventRouter.OnInvalidOp {
		case InvalidOpFatal:
			return fmt.Errorf("run relay %s: update of outbox table %s at %s", c.Name, t.QualifiedName(), xld.WALStart)
		case InvalidOpError:
			r.log.ErrorContext(ctx, "outbox update skipped", "connector", c.Name, "table", t.QualifiedName(), "lsn", xld.WALStart.String())
		default:
			r.log.WarnContext(ctx, "outbox update skipped", "connector", c.Name, "table", t.QualifiedName(), "lsn", xld.WALStart.String())
		}
	case *pglogrepl.DeleteMessage, *pglogrepl.TruncateMessage:
		// Pruning: never published.
	}
	return nil
}

// emit routes one row and hands the record to Kafka, counting it against
// the open transaction.
func (s *stream) emit(ctx context.Context, relID uint32, tuple, old *pglogrepl.TupleData, lsn pglogrepl.LSN) error {
	r := s.relay
	c := r.cfg.Connector
	t, ok := s.rels[relID]
	if !ok {
		return fmt.Errorf("run relay %s: row of unknown relation %d at %s", c.Name, relID, lsn)
	}
	if s.cur == nil {
		return fmt.Errorf("run relay %s: row at %s outside a transaction", c.Name, lsn)
	}
	if tuple == nil {
		return fmt.Errorf("run relay %s: row of %s at %s has no tuple", c.Name, t.QualifiedName(), lsn)
	}
	row := make(Row, len(t.Columns))
	for i, col := range t.Columns {
		if i >= len(tuple.Columns) {
			break
		}
		switch d := tuple.Columns[i]; d.DataType {
		case pglogrepl.TupleDataTypeText, pglogrepl.TupleDataTypeBinary:
			v := string(d.Data)
			row[col.Name] = &v
		case pglogrepl.TupleDataTypeToast:
			// Unchanged TOASTed value: the old tuple (REPLICA IDENTITY
			// FULL) has it, otherwise Debezium's placeholder.
			v := UnavailableValue
			if old != nil && i < len(old.Columns) && old.Columns[i].DataType == pglogrepl.TupleDataTypeText {
				v = string(old.Columns[i].Data)
			}
			row[col.Name] = &v
		default:
			row[col.Name] = nil
		}
	}
	rec, err := c.Route(t, row)
	if err != nil {
		return fmt.Errorf("run relay %s: at %s: %w", c.Name, lsn, err)
	}
	kr := &kgo.Record{Topic: rec.Topic, Key: rec.Key, Value: rec.Value}
	for _, h := range rec.Headers {
		kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	span := startPublish(r.cfg.TracerProvider, c.Name, kr)
	tx := s.cur
	s.mu.Lock()
	tx.pending++
	s.inflight++
	s.mu.Unlock()
	r.cfg.Kafka.Produce(s.pctx, kr, func(kr *kgo.Record, err error) {
		endPublish(span, kr, err)
		s.mu.Lock()
		s.inflight--
		if err != nil {
			// The transaction stays pending: nothing at or after it is
			// ever confirmed by this Run.
			if s.failed == nil {
				s.failed = fmt.Errorf("run relay %s: produce to %s: %w", c.Name, kr.Topic, err)
			}
		} else {
			tx.pending--
			s.advance()
		}
		s.mu.Unlock()
		select {
		case s.changed <- struct{}{}:
		default:
		}
	})
	return nil
}

// advance pops the leading transactions that are committed and fully
// acknowledged, moving the safe position to their end. Called with mu held.
func (s *stream) advance() {
	for len(s.queue) > 0 && s.queue[0].committed && s.queue[0].pending == 0 {
		if s.queue[0].end > s.safe {
			s.safe = s.queue[0].end
		}
		s.queue[0] = nil
		s.queue = s.queue[1:]
	}
}

// sendStatus reports the safe position as written, flushed and applied.
func (s *stream) sendStatus(ctx context.Context, final bool) error {
	s.mu.Lock()
	pos := s.safe
	s.mu.Unlock()
	if pos < s.sent {
		pos = s.sent
	}
	err := pglogrepl.SendStandbyStatusUpdate(ctx, s.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pos, WALFlushPosition: pos, WALApplyPosition: pos,
	})
	if err != nil {
		return fmt.Errorf("run relay %s: send standby status: %w", s.relay.cfg.Connector.Name, err)
	}
	if pos > s.sent {
		s.relay.log.DebugContext(ctx, "wal position confirmed", "connector", s.relay.cfg.Connector.Name, "lsn", pos.String(), "final", final)
	}
	s.sent = pos
	s.lastSend = time.Now()
	s.relay.storeConfirmed(pos)
	return nil
}

// finish ends a Run: on a clean stop it waits (bounded) for in-flight
// records, then confirms what is safe and closes the connection.
func (s *stream) finish(ctx context.Context, cause error) error {
	r := s.relay
	c := r.cfg.Connector
	bg := context.WithoutCancel(ctx)
	if cause == nil {
		timer := time.NewTimer(r.cfg.DrainTimeout)
		defer timer.Stop()
	drain:
		for {
			s.mu.Lock()
			n := s.inflight
			s.mu.Unlock()
			if n == 0 {
				break
			}
			select {
			case <-s.changed:
			case <-timer.C:
				r.log.WarnContext(bg, "relay stopped with records in flight", "connector", c.Name, "records", n)
				break drain
			}
		}
	}
	s.mu.Lock()
	failed := s.failed
	s.mu.Unlock()
	if cause == nil && failed != nil {
		// Stopping anyway: the failed records stay unconfirmed and are
		// sent again by the next Run.
		r.log.WarnContext(bg, "produce failed while stopping", "connector", c.Name, "err", failed)
	}
	if err := s.sendStatus(bg, true); err != nil && cause == nil {
		cause = err
	}
	cctx, cancel := context.WithTimeout(bg, 5*time.Second)
	defer cancel()
	_ = s.conn.Close(cctx)
	if cause != nil {
		return cause // logged by the caller, who restarts the relay
	}
	r.log.InfoContext(bg, "relay stopped", "connector", c.Name, "lsn", r.Confirmed().String())
	return nil
}
