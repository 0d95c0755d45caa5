package relay

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// catchUp publishes the captured tables before streaming when the snapshot
// is due (snapshot.mode, a snapshot never completed), the slot was recreated
// under an existing checkpoint (changes between the old and the new slot
// would be missing), or the broker lost records the checkpoint says it had.
// It waits until Kafka acknowledged every record and then records it.
func (rn *run) catchUp(ctx context.Context, conn *pgx.Conn, tables []Table, slot slotState) error {
	r := rn.r
	c := r.cfg.Connector
	var reasons []string
	switch {
	case c.SnapshotMode == SnapshotAlways:
		reasons = append(reasons, "snapshot.mode=always")
	case !rn.ckpt.SnapshotDone && c.SnapshotMode != SnapshotNoData:
		reasons = append(reasons, "snapshot not done")
	}
	recreated := slot.created && rn.ckpt.existed && len(rn.ckpt.Topics) > 0
	if recreated {
		reasons = append(reasons, "slot recreated")
	}
	lost, err := rn.brokerLost(ctx)
	if err != nil {
		return fmt.Errorf("run relay %s: compare the checkpoint with the broker: %w", c.Name, err)
	}
	if len(lost) > 0 {
		reasons = append(reasons, "broker lost records")
	}
	if len(reasons) == 0 {
		if rn.ckpt.SnapshotDone {
			return nil
		}
		rn.mu.Lock()
		rn.ckpt.SnapshotDone = true // snapshot.mode=no_data
		rn.mu.Unlock()
		return rn.writeCheckpoint(ctx, conn)
	}
	if len(lost) > 0 || recreated {
		// Record the need first: the records published now would raise the
		// broker's end offsets above the recorded ones, hiding the loss from
		// the next start if this one fails half-way.
		rn.mu.Lock()
		rn.ckpt.SnapshotDone = false
		for _, t := range lost {
			delete(rn.ckpt.Topics, t)
		}
		rn.mu.Unlock()
		if err := rn.writeCheckpoint(ctx, conn); err != nil {
			return err
		}
	}
	rows, err := rn.publishTables(ctx, conn, tables, slot.snapshot)
	if err != nil {
		return err
	}
	rn.mu.Lock()
	rn.ckpt.SnapshotDone = true
	rn.mu.Unlock()
	if err := rn.writeCheckpoint(ctx, conn); err != nil {
		return err
	}
	written := make([]string, 0, len(rn.topics))
	for t := range rn.topics {
		written = append(written, t)
	}
	if len(lost) > 0 || recreated {
		r.log.WarnContext(ctx, "broker lost records: tables re-published",
			"reason", strings.Join(reasons, ", "), "lost_topics", lost, "rows", rows, "topics", written)
	} else {
		r.log.InfoContext(ctx, "snapshot published", "reason", strings.Join(reasons, ", "), "rows", rows, "topics", written)
	}
	return nil
}

// publishTables publishes every row of tables, read in one repeatable-read
// transaction (on the slot's exported snapshot when there is one), as
// snapshot changes (op "r"), and waits until Kafka acknowledged them all.
// A row that cannot be routed stops it after the records before it are
// delivered.
func (rn *run) publishTables(ctx context.Context, conn *pgx.Conn, tables []Table, exported string) (int, error) {
	name := rn.r.cfg.Connector.Name
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, fmt.Errorf("run relay %s: snapshot: begin: %w", name, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if exported != "" {
		if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+strings.ReplaceAll(exported, "'", "''")+"'"); err != nil {
			return 0, fmt.Errorf("run relay %s: snapshot: import %s: %w", name, exported, err)
		}
	}
	n := 0
	for _, t := range tables {
		read, err := rn.publishTable(ctx, tx, t)
		n += read
		if err != nil {
			rn.drain(rn.r.cfg.DrainTimeout)
			return n, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return n, fmt.Errorf("run relay %s: snapshot: commit: %w", name, err)
	}
	return n, rn.waitAcknowledged(ctx)
}

func (rn *run) publishTable(ctx context.Context, tx pgx.Tx, t Table) (int, error) {
	c := rn.r.cfg.Connector
	cols := make([]string, len(t.Columns))
	for i, col := range t.Columns {
		cols[i] = pgx.Identifier{col.Name}.Sanitize()
	}
	q := "SELECT " + strings.Join(cols, ", ") + " FROM " + quoteTable(t.QualifiedName())
	rows, err := tx.Query(ctx, q, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return 0, fmt.Errorf("run relay %s: snapshot %s: %w", c.Name, t.QualifiedName(), err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		raw := rows.RawValues()
		row := make(Row, len(t.Columns))
		for i, col := range t.Columns {
			if raw[i] != nil {
				v := string(raw[i])
				row[col.Name] = &v
			} else {
				row[col.Name] = nil
			}
		}
		recs, err := c.Route(Change{Table: t, Op: OpRead, After: row, At: time.Now(), RunID: rn.id})
		if err != nil {
			return n, fmt.Errorf("run relay %s: snapshot: %w", c.Name, err)
		}
		for _, rec := range recs {
			if err := rn.produce(ctx, rec, nil); err != nil {
				return n, fmt.Errorf("run relay %s: snapshot: %w", c.Name, err)
			}
		}
		n++
		rn.mu.Lock()
		failed := rn.stalled(time.Now())
		rn.mu.Unlock()
		if failed != nil {
			return n, failed
		}
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("run relay %s: snapshot %s: %w", c.Name, t.QualifiedName(), err)
	}
	return n, nil
}

// tablesEmpty reports whether tables have no row in the exported snapshot.
func tablesEmpty(ctx context.Context, conn *pgx.Conn, tables []Table, exported string) (bool, error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return false, fmt.Errorf("check tables: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+strings.ReplaceAll(exported, "'", "''")+"'"); err != nil {
		return false, fmt.Errorf("check tables: import snapshot %s: %w", exported, err)
	}
	for _, t := range tables {
		var any bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+quoteTable(t.QualifiedName())+")").Scan(&any); err != nil {
			return false, fmt.Errorf("check table %s: %w", t.QualifiedName(), err)
		}
		if any {
			return false, nil
		}
	}
	return true, nil
}

// waitAcknowledged waits until no record is in flight, or one failed, or
// Kafka stalled (see stalled).
func (rn *run) waitAcknowledged(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		rn.mu.Lock()
		n, failed := rn.inflight, rn.stalled(time.Now())
		rn.mu.Unlock()
		if failed != nil {
			return failed
		}
		if n == 0 {
			return nil
		}
		select {
		case <-rn.changed:
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
