package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// confirmPoll is how long a delivered position may wait before it is
// confirmed, and how often the stream checks for a failed produce.
const confirmPoll = 50 * time.Millisecond

// stream is the streaming phase of a run: the reading goroutine's state.
// The fields marked "mu" are guarded by run.mu.
type stream struct {
	*run
	repl   *pgconn.PgConn
	conn   *pgx.Conn        // checkpoint writes, table descriptions
	tables map[string]Table // "schema.table" → description
	rels   map[uint32]Table // relation id → description (from the WAL)
	cur    *txn             // open transaction
	live   bool             // replication started: status updates can be sent

	sent          pglogrepl.LSN // last position sent to the server
	lastSend      time.Time
	lastCkpt      time.Time
	nextHeartbeat time.Time

	queue    []*txn        // mu: transactions not yet confirmable, in commit order
	safe     pglogrepl.LSN // mu: every transaction before it is committed and acknowledged
	ckptSafe pglogrepl.LSN // mu: safe as of the last checkpoint written
}

// txn is one transaction: records still awaiting Kafka's acknowledgement
// and, once committed, the end of its commit record.
type txn struct {
	pending   int
	committed bool
	end       pglogrepl.LSN
}

func newStream(rn *run, repl *pgconn.PgConn, conn *pgx.Conn, tables []Table, start pglogrepl.LSN) *stream {
	s := &stream{run: rn, repl: repl, conn: conn, tables: map[string]Table{}, rels: map[uint32]Table{},
		sent: start, safe: start, ckptSafe: start}
	for _, t := range tables {
		s.tables[t.QualifiedName()] = t
	}
	now := time.Now()
	s.lastSend, s.lastCkpt = now, now
	if hb := rn.r.cfg.Connector.HeartbeatInterval; hb > 0 {
		s.nextHeartbeat = now.Add(hb)
	}
	return s
}

func (s *stream) loop(ctx context.Context) error {
	cfg := s.r.cfg
	interval := cfg.StandbyTimeout / 2
	for {
		if ctx.Err() != nil {
			return nil
		}
		s.mu.Lock()
		failed, dirty, busy, pos := s.stalled(time.Now()), s.dirty, len(s.queue) > 0, s.confirmable()
		s.mu.Unlock()
		if failed != nil {
			return failed
		}
		now := time.Now()
		if dirty && now.Sub(s.lastCkpt) >= cfg.CheckpointInterval {
			if err := s.checkpoint(ctx); err != nil {
				return err
			}
			continue
		}
		if !s.nextHeartbeat.IsZero() && !now.Before(s.nextHeartbeat) {
			if err := s.heartbeat(ctx, now); err != nil {
				return err
			}
		}
		if now.Sub(s.lastSend) >= interval || (pos > s.sent && now.Sub(s.lastSend) >= confirmPoll) {
			if err := s.sendStatus(ctx); err != nil {
				return err
			}
		}
		deadline := s.lastSend.Add(interval)
		if busy || pos > s.sent {
			deadline = minTime(deadline, time.Now().Add(confirmPoll))
		}
		if dirty {
			deadline = minTime(deadline, s.lastCkpt.Add(cfg.CheckpointInterval))
		}
		if !s.nextHeartbeat.IsZero() {
			deadline = minTime(deadline, s.nextHeartbeat)
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		msg, err := s.repl.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			// A timeout (or ctx's cancellation) leaves the connection usable.
			if ctx.Err() != nil || pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("run relay %s: receive: %w", cfg.Connector.Name, err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if err := s.handleCopyData(ctx, msg.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("run relay %s: replication: %w", cfg.Connector.Name, pgconn.ErrorResponseToPgError(msg))
		default:
			return fmt.Errorf("run relay %s: replication: unexpected message %T", cfg.Connector.Name, msg)
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// heartbeat produces Debezium's heartbeat record (heartbeat.interval.ms).
func (s *stream) heartbeat(ctx context.Context, now time.Time) error {
	s.nextHeartbeat = now.Add(s.r.cfg.Connector.HeartbeatInterval)
	rec, err := s.r.cfg.Connector.Heartbeat(now)
	if err != nil {
		return fmt.Errorf("run relay %s: %w", s.r.cfg.Connector.Name, err)
	}
	return s.produce(ctx, rec, nil)
}

func (s *stream) handleCopyData(ctx context.Context, data []byte) error {
	name := s.r.cfg.Connector.Name
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
			return s.sendStatus(ctx)
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
	c := s.r.cfg.Connector
	m, err := pglogrepl.Parse(xld.WALData)
	if err != nil {
		return fmt.Errorf("run relay %s: decode pgoutput message at %s: %w", c.Name, xld.WALStart, err)
	}
	switch m := m.(type) {
	case *pglogrepl.RelationMessage:
		return s.relation(ctx, m)
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
		return s.change(ctx, m.RelationID, OpCreate, nil, m.Tuple, xld.WALStart)
	case *pglogrepl.UpdateMessage:
		return s.change(ctx, m.RelationID, OpUpdate, m.OldTuple, m.NewTuple, xld.WALStart)
	case *pglogrepl.DeleteMessage:
		return s.change(ctx, m.RelationID, OpDelete, m.OldTuple, nil, xld.WALStart)
	case *pglogrepl.TruncateMessage:
		// skipped.operations=t, Debezium's default: never published.
	}
	return nil
}

// relation records a table's description as the WAL announces it, with the
// primary key from the catalog.
func (s *stream) relation(ctx context.Context, m *pglogrepl.RelationMessage) error {
	t := Table{Schema: m.Namespace, Name: m.RelationName}
	for _, col := range m.Columns {
		t.Columns = append(t.Columns, Column{Name: col.Name, Type: col.DataType, TypeMod: col.TypeModifier})
	}
	known, ok := s.tables[t.QualifiedName()]
	if !ok && t.Name != checkpointTable && s.r.cfg.Connector.Tables.Match(t.Schema, t.Name) {
		d, err := describeTable(ctx, s.conn, t.Schema, t.Name)
		if err != nil {
			return fmt.Errorf("run relay %s: %w", s.r.cfg.Connector.Name, err)
		}
		known, ok = d, true
		s.tables[t.QualifiedName()] = d
	}
	if ok {
		t.Key = known.Key
	}
	s.rels[m.RelationID] = t
	return nil
}

// change routes one row change and hands its records to Kafka, counting
// them against the open transaction. A change that cannot be routed ends
// the stream with its error (see finish for what is delivered first).
func (s *stream) change(ctx context.Context, relID uint32, op Op, old, tuple *pglogrepl.TupleData, lsn pglogrepl.LSN) error {
	c := s.r.cfg.Connector
	t, ok := s.rels[relID]
	if !ok {
		return fmt.Errorf("run relay %s: row of unknown relation %d at %s", c.Name, relID, lsn)
	}
	if t.Name == checkpointTable || !c.Tables.Match(t.Schema, t.Name) {
		return nil // a publication FOR ALL TABLES carries other tables
	}
	if c.Skipped[op] {
		return nil // skipped.operations: not published, its position confirmed with the transaction
	}
	if s.cur == nil {
		return fmt.Errorf("run relay %s: row at %s outside a transaction", c.Name, lsn)
	}
	ch := Change{Table: t, Op: op, At: time.Now(), RunID: s.id}
	ch.After = decodeTuple(t, tuple, old)
	if old != nil {
		ch.Before = decodeTuple(t, old, nil)
	}
	recs, err := c.Route(ch)
	var skip *UnexpectedUpdateError
	if errors.As(err, &skip) && !skip.Fatal {
		log := s.r.log.WarnContext
		if skip.Level == InvalidOpError {
			log = s.r.log.ErrorContext
		}
		log(ctx, "outbox update skipped", "table", t.QualifiedName(), "lsn", lsn.String())
		return nil
	}
	if err != nil {
		return fmt.Errorf("run relay %s: at %s: %w", c.Name, lsn, err)
	}
	tx := s.cur
	for _, rec := range recs {
		s.mu.Lock()
		tx.pending++
		s.mu.Unlock()
		err := s.produce(ctx, rec, func(err error) {
			if err == nil {
				tx.pending--
				s.advance()
			}
			// On failure the transaction stays pending: nothing at or
			// after it is ever confirmed by this Run.
		})
		if err != nil {
			s.mu.Lock()
			tx.pending--
			s.mu.Unlock()
			return fmt.Errorf("run relay %s: at %s: %w", c.Name, lsn, err)
		}
	}
	return nil
}

// decodeTuple turns a pgoutput tuple into a Row; nil for no tuple. An
// unchanged TOASTed value is taken from old when it has it (REPLICA
// IDENTITY FULL), else Debezium's placeholder.
func decodeTuple(t Table, tuple, old *pglogrepl.TupleData) Row {
	if tuple == nil {
		return nil
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
			v := UnavailableValue
			if old != nil && i < len(old.Columns) && old.Columns[i].DataType == pglogrepl.TupleDataTypeText {
				v = string(old.Columns[i].Data)
			}
			row[col.Name] = &v
		default:
			row[col.Name] = nil
		}
	}
	return row
}
