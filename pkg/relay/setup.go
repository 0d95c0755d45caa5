package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// checkpointTable is the relay's own table in the source database; it is in
// no publication and never captured.
const checkpointTable = "relay_checkpoint"

// textParams make PostgreSQL print values the way the relay parses them, on
// the replication connection (pgoutput's text format) as on the snapshot's.
var textParams = map[string]string{
	"DateStyle":          "ISO, MDY",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
}

// connect opens a plain connection to the connector's database.
func (r *Relay) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(r.cfg.ConnString)
	if err != nil {
		return nil, fmt.Errorf("relay %s: parse connection string: %w", r.cfg.Connector.Name, err)
	}
	for k, v := range textParams {
		cfg.RuntimeParams[k] = v
	}
	cfg.RuntimeParams["application_name"] = r.applicationName()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("relay %s: connect: %w", r.cfg.Connector.Name, err)
	}
	return conn, nil
}

// applicationName marks the relay's connections (pg_stat_activity), so a
// takeover only ever terminates a relay's walsender.
func (r *Relay) applicationName() string { return "sagabox-relay " + r.cfg.Connector.SlotName }

// prepared is what Run needs from the database before streaming.
type prepared struct {
	tables []Table // captured tables, by name
	ckpt   checkpoint
}

// prepare creates the checkpoint table and this slot's row, finds and
// describes the captured tables and ensures the publication.
func (r *Relay) prepare(ctx context.Context, conn *pgx.Conn) (prepared, error) {
	name := r.cfg.Connector.Name
	ckpt, err := r.loadCheckpoint(ctx, conn)
	if err != nil {
		return prepared{}, fmt.Errorf("relay %s: %w", name, err)
	}
	tables, err := r.capturedTables(ctx, conn)
	if err != nil {
		return prepared{}, fmt.Errorf("relay %s: %w", name, err)
	}
	if err := r.ensurePublication(ctx, conn, tables); err != nil {
		return prepared{}, fmt.Errorf("relay %s: %w", name, err)
	}
	return prepared{tables: tables, ckpt: ckpt}, nil
}

// capturedTables lists the ordinary and partitioned tables the connector's
// filters select, described.
func (r *Relay) capturedTables(ctx context.Context, conn *pgx.Conn) ([]Table, error) {
	const q = `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1, 2`
	rows, _ := conn.Query(ctx, q)
	names, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Schema, Name string }])
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var tables []Table
	for _, n := range names {
		if n.Name == checkpointTable || !r.cfg.Connector.Tables.Match(n.Schema, n.Name) {
			continue
		}
		t, err := describeTable(ctx, conn, n.Schema, n.Name)
		if err != nil {
			return nil, err
		}
		tables = append(tables, t)
	}
	if len(tables) == 0 {
		return nil, errors.New("no table matches the connector's table filters")
	}
	return tables, nil
}

// describeTable reads the columns (without generated ones, which pgoutput
// does not stream) and the primary key of schema.table.
func describeTable(ctx context.Context, conn *pgx.Conn, schema, table string) (Table, error) {
	const qCols = `SELECT a.attname, a.atttypid, a.atttypmod FROM pg_attribute a
		WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		ORDER BY a.attnum`
	const qKey = `SELECT a.attname FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey::int2[])
		WHERE i.indrelid = $1::regclass AND i.indisprimary
		ORDER BY array_position(i.indkey::int2[], a.attnum)`
	t := Table{Schema: schema, Name: table}
	rel := quoteTable(t.QualifiedName())
	rows, _ := conn.Query(ctx, qCols, rel)
	cols, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Column, error) {
		var c Column
		return c, row.Scan(&c.Name, &c.Type, &c.TypeMod)
	})
	if err != nil {
		return Table{}, fmt.Errorf("describe %s: %w", t.QualifiedName(), err)
	}
	rows, _ = conn.Query(ctx, qKey, rel)
	key, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return Table{}, fmt.Errorf("load primary key of %s: %w", t.QualifiedName(), err)
	}
	t.Columns, t.Key = cols, key
	return t, nil
}

func (r *Relay) ensurePublication(ctx context.Context, conn *pgx.Conn, tables []Table) error {
	c := r.cfg.Connector
	name := pgx.Identifier{c.PublicationName}.Sanitize()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, c.PublicationName).Scan(&exists); err != nil {
		return fmt.Errorf("look up publication %s: %w", c.PublicationName, err)
	}
	switch {
	case c.PublicationAutocreate == "disabled":
		if !exists {
			return fmt.Errorf("publication %s does not exist and publication.autocreate.mode is disabled", c.PublicationName)
		}
		return nil
	case exists && c.PublicationAutocreate == "all_tables":
		return nil
	case !exists:
		target := "ALL TABLES"
		if c.PublicationAutocreate == "filtered" {
			quoted := make([]string, len(tables))
			for i, t := range tables {
				quoted[i] = quoteTable(t.QualifiedName())
			}
			target = "TABLE " + strings.Join(quoted, ", ")
		}
		_, err := conn.Exec(ctx, "CREATE PUBLICATION "+name+" FOR "+target)
		if pgCode(err) == "42710" { // duplicate_object: created concurrently
			return nil
		}
		if err != nil {
			return fmt.Errorf("create publication %s: %w", c.PublicationName, err)
		}
		r.log.InfoContext(ctx, "publication created", "publication", c.PublicationName)
		return nil
	}
	rows, _ := conn.Query(ctx, `SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1`, c.PublicationName)
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list tables of publication %s: %w", c.PublicationName, err)
	}
	for _, t := range tables {
		if slices.Contains(have, t.QualifiedName()) {
			continue
		}
		if _, err := conn.Exec(ctx, "ALTER PUBLICATION "+name+" ADD TABLE "+quoteTable(t.QualifiedName())); err != nil {
			return fmt.Errorf("add table %s to publication %s: %w", t.QualifiedName(), c.PublicationName, err)
		}
		r.log.InfoContext(ctx, "table added to publication", "publication", c.PublicationName, "table", t.QualifiedName())
	}
	return nil
}

// slotState is the slot as Run finds or creates it.
type slotState struct {
	created   bool
	confirmed pglogrepl.LSN
	snapshot  string // exported snapshot of a slot created by this Run
}

func (r *Relay) lookupSlot(ctx context.Context, conn *pgx.Conn) (slotState, bool, error) {
	const q = `SELECT coalesce(database, ''), coalesce(plugin, ''), coalesce(confirmed_flush_lsn, '0/0'), current_database()
		FROM pg_replication_slots WHERE slot_name = $1`
	slot := r.cfg.Connector.SlotName
	var db, plugin, cur string
	var lsn pglogrepl.LSN
	err := conn.QueryRow(ctx, q, slot).Scan(&db, &plugin, &lsn, &cur)
	if errors.Is(err, pgx.ErrNoRows) {
		return slotState{}, false, nil
	}
	if err != nil {
		return slotState{}, false, fmt.Errorf("look up slot %s: %w", slot, err)
	}
	if db != cur || plugin != "pgoutput" {
		return slotState{}, false, fmt.Errorf("slot %s belongs to database %q with plugin %q, want %q with pgoutput", slot, db, plugin, cur)
	}
	return slotState{confirmed: lsn}, true, nil
}

// openSlot connects for replication and, when the slot does not exist yet,
// creates it there with an exported snapshot: the snapshot then reads
// exactly the rows committed before the slot's first position.
func (r *Relay) openSlot(ctx context.Context, conn *pgx.Conn) (*pgconn.PgConn, slotState, error) {
	c := r.cfg.Connector
	cfg, err := pgconn.ParseConfig(r.cfg.ConnString)
	if err != nil {
		return nil, slotState{}, fmt.Errorf("relay %s: parse connection string: %w", c.Name, err)
	}
	for k, v := range textParams {
		cfg.RuntimeParams[k] = v
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = r.applicationName()
	repl, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, slotState{}, fmt.Errorf("relay %s: connect for replication: %w", c.Name, err)
	}
	st, exists, err := r.lookupSlot(ctx, conn)
	if err == nil && !exists {
		var res pglogrepl.CreateReplicationSlotResult
		res, err = pglogrepl.CreateReplicationSlot(ctx, repl, c.SlotName, "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{SnapshotAction: "EXPORT_SNAPSHOT"})
		switch {
		case pgCode(err) == "42710": // created concurrently
			st, _, err = r.lookupSlot(ctx, conn)
		case err == nil:
			lsn, perr := pglogrepl.ParseLSN(res.ConsistentPoint)
			if perr != nil {
				err = fmt.Errorf("parse consistent point %q: %w", res.ConsistentPoint, perr)
				break
			}
			st = slotState{created: true, confirmed: lsn, snapshot: res.SnapshotName}
			r.log.InfoContext(ctx, "replication slot created", "slot", c.SlotName, "lsn", lsn.String())
		}
	}
	if err != nil {
		repl.Close(context.WithoutCancel(ctx))
		return nil, slotState{}, fmt.Errorf("relay %s: slot %s: %w", c.Name, c.SlotName, err)
	}
	return repl, st, nil
}

// startReplication starts streaming from the slot's confirmed position. A
// slot still held by another walsender is waited for; when that walsender
// belongs to a relay (application_name) that has not answered for
// 2×StandbyTimeout, its client is dead: it is terminated and the takeover
// logged. A live holder is waited for as long as it lives.
func (r *Relay) startReplication(ctx context.Context, repl *pgconn.PgConn, conn *pgx.Conn) error {
	c := r.cfg.Connector
	args := []string{
		"proto_version '1'",
		"publication_names '" + strings.ReplaceAll(c.PublicationName, "'", "''") + "'",
	}
	busySince := time.Now()
	warned := false
	for {
		err := pglogrepl.StartReplication(ctx, repl, pgx.Identifier{c.SlotName}.Sanitize(), 0,
			pglogrepl.StartReplicationOptions{PluginArgs: args})
		if err == nil {
			return nil
		}
		if pgCode(err) != "55006" { // object_in_use
			return fmt.Errorf("relay %s: start replication on slot %s: %w", c.Name, c.SlotName, err)
		}
		if err := r.takeOver(ctx, conn, time.Since(busySince), &warned); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// takeOver terminates the walsender holding the slot when it is a relay's
// and its client has been silent for 2×StandbyTimeout.
func (r *Relay) takeOver(ctx context.Context, conn *pgx.Conn, waited time.Duration, warned *bool) error {
	const q = `SELECT s.active_pid, coalesce(a.application_name, ''),
			extract(epoch FROM now() - coalesce(p.reply_time, a.backend_start))::float8
		FROM pg_replication_slots s
		LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid
		LEFT JOIN pg_stat_replication p ON p.pid = s.active_pid
		WHERE s.slot_name = $1 AND s.active_pid IS NOT NULL`
	var (
		pid    int32
		app    string
		silent float64
	)
	err := conn.QueryRow(ctx, q, r.cfg.Connector.SlotName).Scan(&pid, &app, &silent)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // released meanwhile
	}
	if err != nil {
		return fmt.Errorf("relay %s: look up the holder of slot %s: %w", r.cfg.Connector.Name, r.cfg.Connector.SlotName, err)
	}
	limit := 2 * r.cfg.StandbyTimeout
	if app != r.applicationName() || time.Duration(silent*float64(time.Second)) < limit {
		if waited > limit && !*warned {
			*warned = true
			r.log.WarnContext(ctx, "replication slot held by a live client, waiting", "slot", r.cfg.Connector.SlotName, "pid", pid, "application", app)
		}
		return nil
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil {
		return fmt.Errorf("relay %s: terminate walsender %d: %w", r.cfg.Connector.Name, pid, err)
	}
	r.log.WarnContext(ctx, "replication slot taken over from a dead relay: walsender terminated",
		"slot", r.cfg.Connector.SlotName, "pid", pid, "silent_s", int(silent), "terminated", ok)
	return nil
}

func quoteTable(t string) string {
	schema, table, _ := strings.Cut(t, ".")
	return pgx.Identifier{schema, table}.Sanitize()
}

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
