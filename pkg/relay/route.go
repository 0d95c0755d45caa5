package relay

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Row is one row as PostgreSQL prints it (pgoutput's text format, or a
// snapshot read in text format): column name to the value's text; nil is
// SQL NULL.
type Row map[string]*string

// Table describes a captured table.
type Table struct {
	Schema string
	Name   string
	// Columns in table order: the order of ExtractNewRecordState's fields
	// and the types every conversion needs.
	Columns []Column
	// Key lists the primary key columns in key order (the key of
	// ExtractNewRecordState records; none gives a null key).
	Key []string
}

// Column is one column of a Table.
type Column struct {
	Name string
	// Type is the column's type OID (pg_type.oid), e.g. 23 for int4.
	Type uint32
	// TypeMod is the type modifier (pg_attribute.atttypmod), -1 for none:
	// numeric precision and scale, time precision.
	TypeMod int32
}

// QualifiedName returns "schema.table", the form of table.include.list.
func (t Table) QualifiedName() string { return t.Schema + "." + t.Name }

// Op is the kind of a change, as in Debezium's envelope field "op".
type Op byte

// The operations.
const (
	OpRead   Op = 'r' // a row read by a snapshot
	OpCreate Op = 'c'
	OpUpdate Op = 'u'
	OpDelete Op = 'd'
	// opTruncate names truncates in skipped.operations; the relay
	// publishes none.
	opTruncate Op = 't'
)

// Change is one captured row change: the input of Route.
type Change struct {
	Table Table
	Op    Op
	// Before holds the old values of an update or delete when the WAL has
	// them (the key columns at least for a delete; every column with
	// REPLICA IDENTITY FULL); After the new values (nil for a delete).
	Before, After Row
	// At is when the relay processed the change: the envelope's ts_ms,
	// EventRouter's default record timestamp.
	At time.Time
	// RunID identifies the relay run: the __debezium.context.runId header.
	RunID string
}

// Record is one Kafka record, as the Connect worker would produce it.
type Record struct {
	Topic string
	// Partition is the partition to write to, or -1 to let the producer's
	// partitioner choose from the key (EventRouter's ":partition" placement
	// and Debezium's heartbeat set it).
	Partition int32
	Key       []byte
	Value     []byte // nil is a tombstone
	Headers   []Header
	// Timestamp is the record's CreateTime; zero lets the producer stamp
	// it when sending, as Kafka does for a Connect record without one.
	Timestamp time.Time
}

// Header is one Kafka record header. A nil Value is a null header value.
type Header struct {
	Key   string
	Value []byte
}

// UnavailableValue replaces an unchanged TOASTed column that the WAL does
// not carry, as Debezium does (unavailable.value.placeholder).
const UnavailableValue = "__debezium_unavailable_value"

// UnexpectedUpdateError is returned by Route for an update of an outbox table
// (table.op.invalid.behavior): unless Fatal, the change is skipped and the
// caller logs it at Level ("warn" or "error").
type UnexpectedUpdateError struct {
	Table string
	Level string
	Fatal bool
}

func (e *UnexpectedUpdateError) Error() string {
	return "unexpected update of outbox table " + e.Table
}

// Route turns a captured change into the records Debezium 3.5 with this
// connector (transform, converters, extended headers) would publish: none,
// one or, for an update that changes a primary key under
// ExtractNewRecordState, several. It is pure: same input, same records.
// What each option does, with the Debezium and Kafka Connect source it
// follows, is written beside the contract tests (relay_contract_test.go).
func (c Connector) Route(ch Change) ([]Record, error) {
	t := ch.Table
	if !c.Tables.Match(t.Schema, t.Name) {
		return nil, fmt.Errorf("route %s row: table not captured by connector %s", t.QualifiedName(), c.Name)
	}
	var (
		recs []Record
		err  error
	)
	switch c.Transform {
	case TransformEventRouter:
		recs, err = c.eventRouter(ch)
	case TransformExtractNewRecordState:
		recs, err = c.extractNewRecordState(ch)
	default:
		err = fmt.Errorf("unsupported transform %q", c.Transform)
	}
	if err != nil {
		if _, ok := err.(*UnexpectedUpdateError); ok {
			return nil, err
		}
		return nil, fmt.Errorf("route %s row: %w", t.QualifiedName(), err)
	}
	return recs, nil
}

// Heartbeat returns the record Debezium's heartbeat (heartbeat.interval.ms)
// emits at time at: topic HeartbeatTopic, partition 0, key
// {serverName: topic.prefix}, value {ts_ms: at in ms}, no headers. The
// transforms pass it through unchanged (it is no change envelope).
func (c Connector) Heartbeat(at time.Time) (Record, error) {
	key := &structValue{fields: []field{{"serverName", c.TopicPrefix}}}
	value := &structValue{fields: []field{{"ts_ms", at.UnixMilli()}}}
	k, err := c.Key.encode(key, false)
	if err != nil {
		return Record{}, fmt.Errorf("heartbeat key: %w", err)
	}
	v, err := c.Value.encode(value, false)
	if err != nil {
		return Record{}, fmt.Errorf("heartbeat value: %w", err)
	}
	return Record{Topic: c.HeartbeatTopic, Partition: 0, Key: k, Value: v}, nil
}

// contextHeaders are the headers Debezium ≥ 3.2.1 adds to every change
// record (extended.headers.enabled; DebeziumHeaderProducer): the logical
// name (topic.prefix), the task id ("0": the Postgres connector has one
// task), the connector plugin name and the id of this run.
func (c Connector) contextHeaders(runID string) []Header {
	if !c.ExtendedHeaders {
		return nil
	}
	return []Header{
		{Key: "__debezium.context.connectorLogicalName", Value: []byte(c.TopicPrefix)},
		{Key: "__debezium.context.taskId", Value: []byte("0")},
		{Key: "__debezium.context.connectorName", Value: []byte("postgresql")},
		{Key: "__debezium.context.runId", Value: []byte(runID)},
	}
}

// encode converts a Connect value with the converter. schemaless says the
// record carries no schema for it: a null is then always a null (a
// tombstone for values), while JsonConverter writes a null that has a
// schema as the JSON text null.
func (cv Converter) encode(v any, schemaless bool) ([]byte, error) {
	if v == nil && (schemaless || cv.Class != JSONConverter) {
		return nil, nil
	}
	switch cv.Class {
	case StringConverter:
		s, err := javaString(v)
		if err != nil {
			return nil, err
		}
		return []byte(s), nil
	case JSONConverter:
		var b bytes.Buffer
		if err := writeJSON(&b, v, jsonOptions{decimalNumeric: cv.DecimalNumeric}); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	return nil, fmt.Errorf("no converter")
}

// rowValues gives the Connect values of a row's columns, converted once.
type rowValues struct {
	t    Table
	row  Row
	opts valueOptions
	conv map[string]any
}

func newRowValues(t Table, row Row, o valueOptions) *rowValues {
	if len(t.Columns) == 0 {
		// Without a description every column is text, in name order.
		for _, name := range slices.Sorted(maps.Keys(row)) {
			t.Columns = append(t.Columns, Column{Name: name, Type: oidText, TypeMod: -1})
		}
	}
	return &rowValues{t: t, row: row, opts: o, conv: map[string]any{}}
}

// column returns the column name, false when the table has none.
func (r *rowValues) column(name string) (Column, bool) {
	for _, c := range r.t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// get returns the Connect value of column name; an error when the table has
// no such column (Struct.get's DataException) or the value cannot convert.
func (r *rowValues) get(name string) (any, Column, error) {
	col, ok := r.column(name)
	if !ok {
		return nil, col, fmt.Errorf("%s is not a valid field name", name)
	}
	if v, ok := r.conv[name]; ok {
		return v, col, nil
	}
	text, ok := r.row[name]
	if !ok {
		return nil, col, fmt.Errorf("column %s: no value in the change", name)
	}
	if text != nil && *text == UnavailableValue && (col.Type == oidBytea || !isStringType(col.Type)) {
		// Unchanged TOASTed value: Debezium's placeholder, as bytes for bytea.
		if col.Type == oidBytea {
			r.conv[name] = []byte(UnavailableValue)
			return r.conv[name], col, nil
		}
		return nil, col, fmt.Errorf("column %s: unchanged TOASTed value of a non-text type", name)
	}
	v, err := connectValue(col, text, r.opts)
	if err != nil {
		return nil, col, err
	}
	r.conv[name] = v
	return v, col, nil
}

// all returns the row as a struct of every column in table order.
func (r *rowValues) all() (*structValue, error) {
	s := &structValue{}
	for _, col := range r.t.Columns {
		v, _, err := r.get(col.Name)
		if err != nil {
			return nil, err
		}
		s.fields = append(s.fields, field{col.Name, v})
	}
	return s, nil
}

// key returns the struct of the primary key columns, nil when there is none.
func (r *rowValues) key() (*structValue, error) {
	if len(r.t.Key) == 0 {
		return nil, nil
	}
	s := &structValue{}
	for _, name := range r.t.Key {
		v, _, err := r.get(name)
		if err != nil {
			return nil, err
		}
		s.fields = append(s.fields, field{name, v})
	}
	return s, nil
}

func isStringType(oid uint32) bool {
	switch oid {
	case oidText, oidVarchar, oidBPChar, oidChar, oidName, oidUUID, oidJSON, oidJSONB, oidXML:
		return true
	}
	return false
}
